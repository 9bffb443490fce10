"""The dataset card (README.md) written beside an export's files.

Hugging Face dataset-card layout: YAML front matter whose `configs` maps the splits to their files (so
`load_dataset(DIR)` finds them too), then what a careful reader needs to trust the data: counts and why pairs
were left out, agreement, who judged, which models wrote the responses, the options, the split rule, the
columns and each file's sha256.
"""

from datetime import datetime
from pathlib import Path
from typing import Any

from annotator.models import Campaign, PromptFormat
from exports.aggregation import DROP_HELP, Drop
from exports.formats import CONVERSATIONAL, MIXED, OPENAI, PROMPT_SEPARATOR, REFUSAL_HELP, STRING, Refusal
from exports.options import ExportOptions
from exports.selectors import campaign_edit_pairs_count, campaign_ranked_pairs_count
from exports.writers import column_descriptions, parquet_schema
from quality.gate import JudgeGate, campaign_judge_gate

OPENAI_COLUMNS = [
    ("input", "object", 'The prompt: {"messages": [system message if any, the user message]}.'),
    ("preferred_output", "list of messages", "The preferred response: one assistant message."),
    ("non_preferred_output", "list of messages", "The other response: one assistant message."),
]

KIND_HELP = {
    CONVERSATIONAL: "TRL's conversational preference format: `prompt` is a list of messages, `chosen` and "
    "`rejected` one assistant message each; TRL renders them through the model's chat template.",
    STRING: "TRL's standard (plain text) preference format: `prompt`, `chosen` and `rejected` are strings; TRL "
    "trains on prompt + response + EOS, joined with no separator.",
    OPENAI: "OpenAI's preference fine-tuning JSONL (`input.messages`, `preferred_output`, "
    "`non_preferred_output`). Provenance is not in these files (OpenAI accepts only those fields).",
}


def format_reason(*, kind: str, requested: str, sampled: dict[str, int]) -> str:
    """Why the rows have this format: how the campaign's responses were sampled, and what that means for them."""
    chat, text = sampled.get(PromptFormat.CHAT, 0), sampled.get(PromptFormat.TEXT, 0)
    imported, mixed = sampled.get(PromptFormat.UNKNOWN, 0), sampled.get(MIXED, 0)
    how = "chosen by auto from how the responses were sampled" if requested == "auto" else "as asked"
    why = [f"Format {kind}, {how}."]
    if kind == STRING:
        if text:
            why.append(
                f"{text} pair(s) were sampled as raw text completions (the model has no chat template): each prompt "
                "is exactly the text the model continued, nothing added, so prompt + response + EOS is what it "
                "produced."
            )
        if imported:
            why.append(
                f"{imported} imported pair(s) have no recorded prompt text: their prompt is the user message "
                f"followed by {PROMPT_SEPARATOR!r}, since TRL adds no separator."
            )
        if chat:
            why.append(f"{chat} pair(s) sampled through the model's chat template are left out (refused).")
    else:
        if chat:
            why.append(
                f"{chat} pair(s) were sampled through the model's chat template: TRL renders each row with the "
                "model's template, as when the responses were written."
                if kind == CONVERSATIONAL
                else f"{chat} pair(s) were sampled through the model's chat template, as conversations."
            )
        if imported:
            why.append(
                f"{imported} imported pair(s) have no record of how their responses were produced: they are "
                "exported as the conversations they are."
            )
        if text:
            why.append(f"{text} pair(s) sampled as raw text completions are left out (refused).")
    if mixed:
        why.append(f"{mixed} pair(s) whose two responses were sampled differently are left out (refused).")
    return " ".join(why)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _judge_gate_lines(gate: JudgeGate) -> list[str]:
    """What the judge gate checked before this export counted AI verdicts, and the figures it measured."""
    lines = ["### Judge gate", ""]
    if not gate.enabled:
        lines.append(
            "Off: the campaign audits none of its AI judge's pairs (judge_audit_size 0), so the AI verdicts in this "
            "dataset were not checked against people's."
        )
        return lines
    if not gate.judges:
        lines.append("On, with nothing to check: no AI judge has given this campaign a verdict.")
        return lines
    t = gate.thresholds
    lines += [
        f"On: AI verdicts count only if, on a random audit sample of each judge's pairs ({gate.audit_size} per "
        "judge) that people judged too, the judge's Cohen's kappa with the people's majority (categories a, b, "
        f"neither: tie and both bad) is at least {t.min_kappa} over at least {t.min_pairs} pairs, and its verdict "
        f"was the same in both orders on at least {t.min_consistency} of its pairs. Every judge passed; measured "
        "when this card was written:",
        "",
    ]
    rows = [
        (
            judge.judge,
            judge.audit_pairs,
            judge.n,
            _number(judge.kappa),
            _number(judge.agreement),
            f"{_number(judge.consistency)} ({judge.consistent} of {judge.consistent + judge.inconsistent})",
            judge.awaiting,
        )
        for judge in gate.judges
    ]
    header = ("judge", "audit pairs", "with both verdicts", "kappa", "agreement", "consistency", "awaiting votes")
    return lines + _table(header, rows)


def dataset_card(
    *,
    campaign: Campaign,
    options: ExportOptions,
    kind: str,
    format_reason: str,
    stats: dict[str, Any],
    files: dict[str, dict[str, Any]],
    export_id: int | None,
    created_by: str,
    created_at: datetime | None,
) -> str:
    names = {split: Path(entry["path"]).name for split, entry in files.items()}
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, name in names.items():
        lines += [f"  - split: {split}", f"    path: {name}"]
    lines += ["tags:", "- preference", "- dpo", "- trl", "---", ""]

    title = f"Preferences from campaign “{campaign.name}”"
    lines += [f"# {title}", ""]
    made = [f"export {export_id}" if export_id else "an export", f"of campaign id {campaign.pk}"]
    if created_at:
        made.append(f"on {created_at:%Y-%m-%d %H:%M} UTC")
    if created_by:
        made.append(f"by {created_by}")
    lines += [f"Written by Preference Studio ({', '.join(made)}).", "", KIND_HELP[kind], "", format_reason, ""]
    if kind != OPENAI:
        data_files = ", ".join(f'"{split}": "{name}"' for split, name in names.items())
        lines += [
            "```python",
            "from datasets import load_dataset",
            f'dataset = load_dataset("parquet", data_files={{{data_files}}})',
            "```",
            "",
        ]

    lines += ["## Files", ""]
    lines += _table(
        ("file", "rows", "bytes", "sha256"),
        [(names[split], entry["rows"], entry["bytes"], f"`{entry['sha256']}`") for split, entry in files.items()],
    )

    lines += ["", "## Counts", ""]
    counted = [
        ("pairs in the campaign", stats["pairs"]),
        (f"pairs with a judgment from the selected judges ({options.judges})", stats["judged"]),
        ("rows exported", stats["exported"]),
        ("rows in train", stats["rows"]["train"]),
        ("rows in validation", stats["rows"]["validation"]),
    ]
    counted += [(f"dropped: {DROP_HELP[Drop(reason)]}", n) for reason, n in stats["dropped"].items()]
    counted += [(f"refused: {REFUSAL_HELP[Refusal(reason)]}", n) for reason, n in stats["refused"].items()]
    counted.append(
        (
            "pairs with a response cut off at its token limit (finish_reason length), "
            + ("kept (keep_truncated)" if options.keep_truncated else "left out"),
            stats["truncated"],
        )
    )
    counted.append(
        (
            "pairs of an annotator's edit against the response it came from (not the model's own samples), "
            + ("kept (include_edits)" if options.include_edits else "left out"),
            campaign_edit_pairs_count(campaign=campaign),
        )
    )
    ranked = "best against worst only" if options.ranking_pairs == "best_worst" else "every pair each one orders"
    counted.append(
        (
            f"pairs with votes from rankings of three responses or more (ranking_pairs: {ranked})",
            campaign_ranked_pairs_count(campaign=campaign),
        )
    )
    if options.checks_length:
        counted += [
            (f"rows longer than {options.max_length} tokens ({options.tokenizer})", stats["overlong"]),
            ("of which the prompt alone fills max_length (TRL drops these silently)", stats["prompt_fills_max_length"]),
        ]
    lines += _table(("what", "count"), counted)

    lines += ["", "## Agreement", ""]
    lines += [
        "Majority vote per pair over the counted votes (skips never count). Agreement is the share of the counted "
        "votes that agree with the majority; ties and both-bad majorities are dropped (a DPO row needs a "
        "preferred response).",
        "",
    ]
    lines += _table(
        ("what", "value"),
        [
            ("mean agreement of exported rows", stats["mean_agreement"]),
            ("unanimous rows", stats["unanimous"]),
            *[(f"rows with {n} vote(s)", count) for n, count in stats["votes_per_row"].items()],
        ],
    )

    lines += ["", "## Sources", ""]
    judges_help = {
        "humans": "human judgments only",
        "ai": "AI judgments only",
        "both": "human judgments, and AI judgments for pairs no human judged",
    }[options.judges]
    lines += [f"Judges: {judges_help}; {stats['judges']} distinct judge(s).", ""]
    lines += _table(("source", "counted votes"), list(stats["votes_by_source"].items()))
    models = sorted(set(stats["chosen_models"]) | set(stats["rejected_models"]))
    lines += [""]
    chosen, rejected = stats["chosen_models"], stats["rejected_models"]
    lines += _table(
        ("model", "chosen", "rejected"),
        [(model or "(unknown)", chosen.get(model, 0), rejected.get(model, 0)) for model in models],
    )
    if options.judges != "humans":
        lines += ["", *_judge_gate_lines(campaign_judge_gate(campaign=campaign))]

    lines += ["", "## Options", ""]
    lines += _table(("option", "value"), [(name, value) for name, value in options.as_dict().items()])

    lines += ["", "## Split", ""]
    lines += [
        f'By prompt: a prompt goes to validation when sha256("{options.seed}:" + prompt_hash), read as a '
        f"number in [0, 1) from its first 8 bytes, is below val_fraction ({options.val_fraction}). "
        "prompt_hash is the sha256 of the system message and the conversation, so every pair of a prompt "
        "(and the same prompt imported twice) is in one split only, and the split does not change when pairs "
        "are added.",
    ]

    lines += ["", "## Columns", ""]
    if kind == OPENAI:
        columns = OPENAI_COLUMNS
    else:
        columns = column_descriptions(parquet_schema(conversational=kind == CONVERSATIONAL))
    lines += _table(("column", "type", "description"), [(f"`{n}`", f"`{t}`", d) for n, t, d in columns])
    return "\n".join(lines) + "\n"
