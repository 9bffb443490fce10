"""Stream a campaign's judgments into export files: decide, shape, check, measure, split, write, describe.

Memory stays flat: votes come from one ordered query read in chunks, pairs are decided `chunk_size` at a
time, the texts of the decided pairs of a chunk come in one more query, and rows go to the split writers,
which flush every few thousand rows. Only counters outlive a chunk.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from annotator.models import Campaign, PromptFormat
from core.checksums import file_sha256
from core.errors import InputError
from exports.aggregation import DROP_HELP, Decision, Drop, Vote, pair_decide
from exports.card import dataset_card, format_reason
from exports.formats import (
    CONVERSATIONAL,
    MIXED,
    OPENAI,
    REFUSAL_HELP,
    STRING,
    TRAIN,
    VALIDATION,
    PairTexts,
    Refusal,
    openai_problem,
    openai_row,
    pair_problem,
    sampled_problem,
    split_of,
    trl_row,
)
from exports.options import ExportOptions
from exports.selectors import CampaignShape, campaign_shape, campaign_votes_stream, pair_texts_for
from exports.writers import (
    CARD_FILE,
    AtomicFileSet,
    JsonlSplitWriter,
    ParquetSplitWriter,
    SplitWriter,
    parquet_schema,
)
from llm.lengths import LengthMeter

CHUNK_PAIRS = 1000
SPLITS = (TRAIN, VALIDATION)


@dataclass
class ExportStats:
    pairs: int = 0  # in the campaign
    judged: int = 0  # with at least one judgment of the selected judges (skips included)
    dropped: Counter = field(default_factory=Counter)  # Drop -> pairs
    refused: Counter = field(default_factory=Counter)  # Refusal -> pairs
    truncated: int = 0  # pairs with a response cut off at its token limit (left out unless keep_truncated)
    overlong: int = 0  # rows longer than max_length tokens (dropped only with drop_overlong)
    prompt_fills: int = 0  # of those, rows whose prompt alone fills max_length (TRL would drop them silently)
    rows: Counter = field(default_factory=Counter)  # split -> rows written
    votes_per_row: Counter = field(default_factory=Counter)  # counted votes -> rows
    votes_by_source: Counter = field(default_factory=Counter)  # human/ai -> counted votes in written rows
    judges: set[int] = field(default_factory=set)  # user ids whose votes are in written rows
    agreement_sum: float = 0.0
    unanimous: int = 0
    chosen_models: Counter = field(default_factory=Counter)
    rejected_models: Counter = field(default_factory=Counter)

    @property
    def exported(self) -> int:
        return sum(self.rows.values())

    def count_row(self, split: str, decision: Decision, row: dict[str, Any]) -> None:
        self.rows[split] += 1
        self.votes_per_row[len(decision.votes)] += 1
        self.votes_by_source.update(vote.source for vote in decision.votes)
        self.judges.update(vote.annotator_id for vote in decision.votes)
        self.agreement_sum += decision.agreement
        self.unanimous += decision.agreement == 1.0
        self.chosen_models[row["chosen_model"]] += 1
        self.rejected_models[row["rejected_model"]] += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what the DatasetExport keeps and the dataset card shows."""
        exported = self.exported
        return {
            "pairs": self.pairs,
            "judged": self.judged,
            "exported": exported,
            "rows": {split: self.rows[split] for split in SPLITS},
            "dropped": {reason.value: self.dropped[reason] for reason in Drop},
            "refused": {reason.value: self.refused[reason] for reason in Refusal if self.refused[reason]},
            "truncated": self.truncated,
            "overlong": self.overlong,
            "prompt_fills_max_length": self.prompt_fills,
            "mean_agreement": round(self.agreement_sum / exported, 4) if exported else None,
            "unanimous": self.unanimous,
            "votes_per_row": {str(n): count for n, count in sorted(self.votes_per_row.items())},
            "votes_by_source": dict(sorted(self.votes_by_source.items())),
            "judges": len(self.judges),
            "chosen_models": dict(self.chosen_models.most_common()),
            "rejected_models": dict(self.rejected_models.most_common()),
        }

    def why_empty(self, *, campaign: Campaign, options: ExportOptions) -> str:
        reasons = [f"{n} {DROP_HELP[reason]}" for reason, n in self.dropped.items() if n]
        reasons += [f"{n} refused because {REFUSAL_HELP[reason]}" for reason, n in self.refused.items() if n]
        hint = (
            "judge some pairs first"
            if self.dropped[Drop.NO_VOTES] == self.pairs
            else "relax min_votes/min_agreement, or judge more pairs"
        )
        return (
            f"Nothing to export from campaign {campaign.name!r} with judges={options.judges}: of its {self.pairs} "
            f"pair(s), {'; '.join(reasons)}. No file was written: {hint}."
        )


@dataclass(frozen=True)
class ExportResult:
    kind: str  # conversational, string or openai
    format_reason: str  # why that format, for the card and the record
    stats: dict[str, Any]
    files: dict[str, dict[str, Any]]


def output_kind(requested: str, shape: CampaignShape, campaign: Campaign) -> str:
    """The format the export writes: `auto` follows how the responses were sampled; a format asked for is
    refused when it can reproduce none of the campaign's pairs (each pair it cannot reproduce is refused)."""
    text = shape.count(PromptFormat.TEXT)
    conversations = shape.count(PromptFormat.CHAT, PromptFormat.UNKNOWN)
    name = campaign.name
    if requested == "auto":
        if shape.count(MIXED) or (text and conversations):
            raise InputError(
                f"Campaign {name!r} mixes how its responses were sampled: {_sampled_counts(shape)}. One file holds "
                "one format, so auto cannot pick one that reproduces them all. Export each part into its own "
                "directory: format conversational for the chat-templated and imported pairs, format string for the "
                "raw-text ones (each export leaves the other part out and counts it)"
                + ("; pairs sampled two ways fit neither" if shape.count(MIXED) else "")
                + ". Next time, keep each model's generations in a campaign of its own."
            )
        return STRING if text else CONVERSATIONAL
    if requested == STRING and shape.conversations:
        raise InputError(
            f"The string format cannot hold the {shape.conversations} prompt(s) of campaign {name!r} that "
            "are conversations (earlier turns or a system message): use format conversational (or auto)."
        )
    fits = text + shape.count(PromptFormat.UNKNOWN) if requested == STRING else conversations
    if not fits:
        why, fix = {
            STRING: (
                "a string row trains on prompt + response without the chat template, text it never produced",
                "conversational",
            ),
            CONVERSATIONAL: ("a conversational row is rendered through a chat template the model never saw", "string"),
            OPENAI: ("OpenAI trains on conversations rendered in its own chat format", "string"),
        }[requested]
        raise InputError(
            f"The {requested} format cannot reproduce how the responses of campaign {name!r} were sampled "
            f"({_sampled_counts(shape)}): {why}. Use format {fix} (or auto)."
        )
    return requested


_SAMPLED_WORDS = {
    PromptFormat.CHAT: "through the model's chat template",
    PromptFormat.UNKNOWN: "imported, with no record of how",
    PromptFormat.TEXT: "as raw text completions (no chat template)",
    MIXED: "with their two responses sampled differently",
}


def _sampled_counts(shape: CampaignShape) -> str:
    return ", ".join(f"{shape.count(key)} pair(s) {how}" for key, how in _SAMPLED_WORDS.items() if shape.count(key))


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _split_writers(files: AtomicFileSet, kind: str) -> dict[str, SplitWriter]:
    if kind == OPENAI:
        return {split: JsonlSplitWriter(files, f"{split}.jsonl") for split in SPLITS}
    schema = parquet_schema(conversational=kind == CONVERSATIONAL)
    return {split: ParquetSplitWriter(files, f"{split}.parquet", schema) for split in SPLITS}


class _Exporter:
    def __init__(
        self, *, campaign: Campaign, options: ExportOptions, kind: str, writers: dict[str, SplitWriter]
    ) -> None:
        self.campaign = campaign
        self.options = options
        self.kind = kind
        self.writers = writers
        self.stats = ExportStats()
        self.meter = (
            LengthMeter(tokenizer=options.tokenizer, conversational=kind != STRING) if options.checks_length else None
        )

    def run(self, chunk_size: int) -> None:
        votes = campaign_votes_stream(campaign=self.campaign, judges=self.options.judges)
        for chunk in _chunks(votes, chunk_size):
            self._chunk(chunk)

    def _chunk(self, chunk: list[tuple[int, list[Vote]]]) -> None:
        options = self.options
        self.stats.judged += len(chunk)
        decided: dict[int, Decision] = {}
        for comparison_id, votes in chunk:
            decision = pair_decide(
                votes, judges=options.judges, min_votes=options.min_votes, min_agreement=options.min_agreement
            )
            if decision.dropped:
                self.stats.dropped[decision.dropped] += 1
            else:
                decided[comparison_id] = decision
        rows: list[tuple[PairTexts, Decision, dict[str, Any]]] = []
        for pair in pair_texts_for(comparison_ids=list(decided)):
            problem = (
                pair_problem(pair)
                or sampled_problem(pair, self.kind)
                or (openai_problem(pair) if self.kind == OPENAI else None)
            )
            if not problem and pair.truncated:
                self.stats.truncated += 1
                problem = None if options.keep_truncated else Refusal.TRUNCATED
            if problem:
                self.stats.refused[problem] += 1
                continue
            decision = decided[pair.comparison_id]
            rows.append((pair, decision, trl_row(pair, decision, conversational=self.kind != STRING)))
        if self.meter is not None:
            rows = self._measured(rows)
        for pair, decision, row in rows:
            split = split_of(pair.prompt_hash, seed=options.seed, val_fraction=options.val_fraction)
            self.writers[split].write(openai_row(row) if self.kind == OPENAI else row)
            self.stats.count_row(split, decision, row)

    def _measured(self, rows: list[tuple[PairTexts, Decision, dict[str, Any]]]) -> list:
        max_length = self.options.max_length
        kept = []
        for item, length in zip(rows, self.meter.measure([row for _, _, row in rows]), strict=True):
            if length.overlong(max_length):
                self.stats.overlong += 1
                self.stats.prompt_fills += length.prompt_fills(max_length)
                if self.options.drop_overlong:
                    self.stats.refused[Refusal.OVERLONG] += 1
                    continue
            kept.append(item)
        return kept


def campaign_export(
    *,
    campaign: Campaign,
    options: ExportOptions,
    out_dir: Path,
    export_id: int | None = None,
    created_by: str = "",
    created_at: datetime | None = None,
    chunk_size: int = CHUNK_PAIRS,
) -> ExportResult:
    """Write the campaign's preferences to out_dir (train, validation, README.md), all or nothing."""
    shape = campaign_shape(campaign=campaign)
    if not shape.pairs:
        raise InputError(f"Campaign {campaign.name!r} has no pairs: import or generate some before exporting.")
    kind = output_kind(options.format, shape, campaign)
    reason = format_reason(kind=kind, requested=options.format, sampled=shape.sampled)
    with AtomicFileSet(out_dir) as files:
        writers = _split_writers(files, kind)
        exporter = _Exporter(campaign=campaign, options=options, kind=kind, writers=writers)
        stats = exporter.stats
        stats.pairs = shape.pairs
        try:
            exporter.run(chunk_size)
        except BaseException:
            for writer in writers.values():
                writer.discard()
            raise
        for writer in writers.values():
            writer.close()
        stats.dropped[Drop.NO_VOTES] += max(0, shape.pairs - stats.judged)
        if not stats.exported:
            raise InputError(stats.why_empty(campaign=campaign, options=options))
        if not stats.rows[TRAIN]:
            raise InputError(
                f"All {stats.exported} exported row(s) fell into the validation split (val_fraction "
                f"{options.val_fraction}, seed {options.seed}): lower val_fraction or try another seed."
            )
        entries: dict[str, dict[str, Any]] = {}
        for split, writer in writers.items():
            if writer.rows:
                temporary = files.temporary(writer.name)
                entries[split] = {
                    "path": str(files.final(writer.name)),
                    "rows": writer.rows,
                    "sha256": file_sha256(temporary),
                    "bytes": temporary.stat().st_size,
                }
        summary = stats.as_dict()
        card = dataset_card(
            campaign=campaign,
            options=options,
            kind=kind,
            format_reason=reason,
            stats=summary,
            files=entries,
            export_id=export_id,
            created_by=created_by,
            created_at=created_at,
        )
        card_path = files.temporary(CARD_FILE)
        card_path.write_text(card, encoding="utf-8")
        entries["card"] = {
            "path": str(files.final(CARD_FILE)),
            "sha256": file_sha256(card_path),
            "bytes": card_path.stat().st_size,
        }
        files.commit()
    return ExportResult(kind=kind, format_reason=reason, stats=summary, files=entries)
