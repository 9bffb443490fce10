"""The dataset card (README.md) written beside an export's files.

Hugging Face dataset-card layout: YAML front matter whose `configs` maps the splits to their files (so
`load_dataset(DIR)` finds them too), then what a careful reader needs to trust the data: counts and why pairs
were left out, agreement, who judged, which models wrote the responses, the options, the split rule, the
columns and each file's sha256.
"""

from datetime import datetime
from pathlib import Path
from typing import Any

from annotator.models import Campaign
from exports.aggregation import DROP_HELP, Drop
from exports.formats import PROMPT_SEPARATOR, REFUSAL_HELP, Refusal
from exports.options import ExportOptions
from exports.writers import column_descriptions, parquet_schema

OPENAI_COLUMNS = [
    ("input", "object", 'The prompt: {"messages": [system message if any, the user message]}.'),
    ("preferred_output", "list of messages", "The preferred response: one assistant message."),
    ("non_preferred_output", "list of messages", "The other response: one assistant message."),
]

KIND_HELP = {
    "conversational": "TRL's conversational preference format: `prompt` is a list of messages, `chosen` and "
    "`rejected` one assistant message each; TRL applies the model's chat template.",
    "string": "TRL's standard (plain text) preference format: `prompt`, `chosen` and `rejected` are strings. "
    f"Each prompt ends with {PROMPT_SEPARATOR!r}, because TRL joins prompt and response with no separator.",
    "openai": "OpenAI's preference fine-tuning JSONL (`input.messages`, `preferred_output`, "
    "`non_preferred_output`). Provenance is not in these files (OpenAI accepts only those fields).",
}


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def dataset_card(
    *,
    campaign: Campaign,
    options: ExportOptions,
    kind: str,
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
    lines += [f"Written by Preference Studio ({', '.join(made)}).", "", KIND_HELP[kind], ""]
    if kind != "openai":
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
    if kind == "openai":
        columns = OPENAI_COLUMNS
    else:
        columns = column_descriptions(parquet_schema(conversational=kind == "conversational"))
    lines += _table(("column", "type", "description"), [(f"`{n}`", f"`{t}`", d) for n, t, d in columns])
    return "\n".join(lines) + "\n"
