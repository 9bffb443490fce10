"""Stream a campaign's votes into export files: decide, check, shape, measure, split, write, describe.

Memory stays flat and the work is done a batch at a time in the database and in Arrow: one grouped query
counts the votes of every pair and is read `chunk_size` pairs at a time, each batch is decided at once, the
texts of the pairs it exports come in one more query, and its rows are shaped into Arrow tables for the
split writers, which flush every few thousand rows. Only counters outlive a batch.
"""

import gc
from collections import Counter
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotator.models import Campaign, PromptFormat
from core.checksums import file_sha256
from core.errors import InputError
from exports.aggregation import DROP_HELP, DROPS, KEPT, Decisions, Drop, pairs_decide
from exports.card import dataset_card, format_reason
from exports.formats import CONVERSATIONAL, MIXED, OPENAI, REFUSAL_HELP, STRING, TRAIN, VALIDATION, Refusal, openai_row
from exports.options import ExportOptions
from exports.rows import ACCEPTED, REFUSALS, in_validation, pairs_check, trl_table
from exports.selectors import CampaignShape, campaign_conversations, campaign_shape
from exports.streams import Tallies, campaign_tallies, pair_texts_for, read_ahead
from exports.writers import (
    CARD_FILE,
    AtomicFileSet,
    JsonlSplitWriter,
    ParquetSplitWriter,
    SplitWriter,
    parquet_schema,
)
from llm.lengths import LengthMeter

CHUNK_PAIRS = 4096
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

    def count_rows(self, rows: pa.Table, validation: np.ndarray) -> None:
        """Count a batch of written rows, in the order they are written, `validation` per row."""
        in_validation = int(validation.sum())
        self.rows[TRAIN] += rows.num_rows - in_validation
        self.rows[VALIDATION] += in_validation
        votes = rows["votes"].to_numpy()
        values, counts = np.unique(votes, return_counts=True)
        self.votes_per_row.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        sources = rows["judge_source"].to_numpy()
        for source in np.unique(sources):
            self.votes_by_source[source] += int(votes[sources == source].sum())
        self.judges.update(np.unique(rows["annotator_ids"].combine_chunks().flatten()).tolist())
        agreement = rows["agreement"].to_numpy()
        self.agreement_sum = float(np.cumsum(np.concatenate([[self.agreement_sum], agreement]))[-1])  # in order
        self.unanimous += int((agreement == 1.0).sum())
        for column, counter in (("chosen_model", self.chosen_models), ("rejected_model", self.rejected_models)):
            counter.update(_first_seen_counts(rows[column]))

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
    if requested == STRING and (conversations_held := campaign_conversations(campaign=campaign)):
        raise InputError(
            f"The string format cannot hold the {conversations_held} prompt(s) of campaign {name!r} that "
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


def _first_seen_counts(values: pa.ChunkedArray) -> dict[str, int]:
    """How often each value occurs, in the order each is first seen (ties in Counter.most_common keep it)."""
    counted = pc.value_counts(values).to_pylist()
    return {entry["values"]: entry["counts"] for entry in counted}


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Batches come as millions of short-lived tuples and strings, freed by reference counting as each batch
    ends; meanwhile Python's cycle collector would walk every live object again and again (a fifth of the
    export's time on SQLite). Paused for the export, as it makes no reference cycles that need it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _in_order_seen(codes: np.ndarray, reasons: tuple, *, skip: int) -> dict:
    """How many of each reason `codes` (indices into `reasons`) holds, in the order each is first seen (the
    order the messages list them), `skip` left out."""
    found, first, counts = np.unique(codes, return_index=True, return_counts=True)
    return {reasons[code]: int(n) for _, code, n in sorted(zip(first, found, counts, strict=True)) if code != skip}


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
        self.schema = parquet_schema(conversational=kind != STRING)
        self.meter = (
            LengthMeter(tokenizer=options.tokenizer, conversational=kind != STRING) if options.checks_length else None
        )

    def run(self, chunk_size: int) -> None:
        with _cycle_collection_paused(), read_ahead(self._reads(chunk_size)) as batches:
            for tallies, decisions, kept, pairs in batches:
                self._batch(tallies, decisions, kept, pairs)

    def _reads(self, chunk_size: int) -> Generator[tuple[Tallies, Decisions, np.ndarray, pa.Table], None, None]:
        """Per batch of pairs: their tallies, decisions, which are kept, and the texts of those."""
        options = self.options
        for tallies in campaign_tallies(
            campaign=self.campaign,
            judges=options.judges,
            chunk_size=chunk_size,
            include_edits=options.include_edits,
            ranking_pairs=options.ranking_pairs,
        ):
            decisions = pairs_decide(
                tallies.counts, judges=options.judges, min_votes=options.min_votes, min_agreement=options.min_agreement
            )
            kept = np.flatnonzero(decisions.kept)
            pairs = pair_texts_for(comparison_ids=tallies.comparison_ids[kept].tolist()) if kept.size else None
            yield tallies, decisions, kept, pairs

    def _batch(self, tallies: Tallies, decisions: Decisions, kept: np.ndarray, pairs: pa.Table | None) -> None:
        options, stats = self.options, self.stats
        stats.judged += len(tallies)
        stats.dropped.update(_in_order_seen(decisions.dropped, DROPS, skip=KEPT))
        if pairs is None:
            return
        kept = kept[np.isin(tallies.comparison_ids[kept], pairs["comparison_id"].to_numpy())]  # deleted meanwhile
        checks = pairs_check(pairs, kind=self.kind, keep_truncated=options.keep_truncated)
        stats.truncated += int(checks.truncated.sum())
        stats.refused.update(_in_order_seen(checks.refused, REFUSALS, skip=ACCEPTED))
        written = checks.refused == ACCEPTED
        pairs, kept = pairs.filter(pa.array(written)), kept[written]
        if not kept.size:
            return
        source = decisions.source[kept]
        rows = trl_table(
            pairs,
            a_won=decisions.majority[kept] == 0,
            votes=decisions.votes[kept],
            agreement=decisions.agreement[kept],
            judge_source=np.array(tallies.sources)[source],
            counted=tallies.votes(kept, source),
            conversational=self.kind != STRING,
            schema=self.schema,
        )
        if self.meter is not None:
            rows = self._measured(rows)
        validation = in_validation(rows["prompt_hash"], seed=options.seed, val_fraction=options.val_fraction)
        stats.count_rows(rows, validation)
        for split, mask in ((TRAIN, ~validation), (VALIDATION, validation)):
            part = rows.filter(pa.array(mask))
            self.writers[split].write([openai_row(row) for row in part.to_pylist()] if self.kind == OPENAI else part)

    def _measured(self, rows: pa.Table) -> pa.Table:
        max_length = self.options.max_length
        lengths = self.meter.measure(rows.select(["prompt", "chosen", "rejected"]).to_pylist())
        overlong = np.array([length.overlong(max_length) for length in lengths], dtype=bool)
        self.stats.overlong += int(overlong.sum())
        self.stats.prompt_fills += sum(
            length.prompt_fills(max_length) for length in lengths if length.overlong(max_length)
        )
        if not self.options.drop_overlong:
            return rows
        self.stats.refused[Refusal.OVERLONG] += int(overlong.sum())
        return rows.filter(pa.array(~overlong))


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
            for writer in writers.values():
                writer.close()
        except BaseException:
            for writer in writers.values():
                writer.discard()
            raise
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
