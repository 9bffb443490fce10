"""The reads of an export run: the vote tallies of a campaign's pairs and the texts of the pairs it exports,
a batch at a time, as Arrow columns.

One grouped query counts the votes of every pair (`campaign_tallies`), read through a streaming cursor; one
more per batch fetches the texts of the pairs it exports (`pair_texts_for`). Rows come from the database
driver as they are (JSON and timestamps as text, no Django field conversion) and are decoded by Arrow a whole
batch at a time, so no Python object is made per value beyond what the driver hands over.
"""

import json
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from queue import Full, Queue
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Aggregate, Q, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce, Concat

from annotator.models import Campaign, Comparison, Judgment, Verdict
from exports.aggregation import SOURCES_FOR_JUDGES, VERDICTS
from exports.rows import CANDIDATE_FIELDS, PAIRS, CountedVotes
from exports.writers import MESSAGES, UTC_TIME

T = TypeVar("T")


@contextmanager
def read_ahead(batches: Generator[T, None, None]) -> Iterator[Iterator[T]]:
    """`batches`, produced one ahead on a thread of its own: the database works without Python's lock (SQLite
    steps, PostgreSQL answers) while the caller shapes the batch before.

    The thread reads through the caller's database connection, which Django lets it share, so it sees what the
    caller sees (the same transaction); the caller must not use the connection until the iteration ends. An
    error in the thread is raised in the caller; leaving the block early stops the thread after its batch.
    """
    shared = connections[DEFAULT_DB_ALIAS]
    handed: Queue = Queue(maxsize=1)
    stop = threading.Event()
    end = object()

    def hand(item: Any) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        connections[DEFAULT_DB_ALIAS] = shared  # this thread's connection is the caller's
        try:
            for batch in batches:
                if not hand(batch):
                    return
            hand(end)
        except BaseException as error:
            hand(_Failed(error))
        finally:
            batches.close()

    def consume() -> Iterator[T]:
        while (item := handed.get()) is not end:
            if isinstance(item, _Failed):
                raise item.error
            yield item

    shared.inc_thread_sharing()
    thread = threading.Thread(target=produce, name="export-reads", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()
        shared.dec_thread_sharing()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _fetched(queryset: QuerySet) -> list[tuple]:
    """The queryset's rows as the database driver returns them (no conversion by Django's fields)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _streamed(queryset: QuerySet, chunk_size: int) -> Iterator[list[tuple]]:
    """The same, `chunk_size` rows at a time, through a streaming cursor (server-side on PostgreSQL)."""
    sql, params = queryset.query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield rows


def campaign_tallies(
    *, campaign: Campaign, judges: str, chunk_size: int, include_edits: bool = False, ranking_pairs: str = "all"
) -> Iterator["Tallies"]:
    """The vote counts of every pair with a judgment from `judges` (skips included), by comparison id, in
    batches of `chunk_size` pairs. Pairs with an annotator's edit count only with `include_edits`; votes derived
    from a ranking, all of them, or (`ranking_pairs="best_worst"`) only its best against its worst.

    One grouped query over the campaign's judgments gives per pair its counted (non-skip) votes as one text
    (`_Joined`): two values per pair for the driver to hand over, where a column per count and per field made
    the driver's per-value objects most of the reading's time. The counts per source and verdict are taken
    from those votes, a batch at a time (`Tallies.from_joined`).
    """
    sources = SOURCES_FOR_JUDGES[judges]
    fields = _vote_fields(sources)
    # A NULL would make the whole vote NULL on PostgreSQL (||): the only nullable field, as "" instead.
    parts = [part for name in fields for part in (Value(_PART), _joinable(name))][1:]
    grouped = (
        Judgment.objects.filter(
            comparison_id__in=campaign_pairs_exported(campaign=campaign, include_edits=include_edits).values("id"),
            source__in=sources,
        )
        .filter(ranking_votes_counted(ranking_pairs))
        .values("comparison_id")
        .annotate(votes=_Joined(Concat(*parts, output_field=TextField()), filter=~Q(verdict=Verdict.SKIP)))
        .order_by("comparison_id")
        .values_list("comparison_id", "votes")
    )
    for batch in _streamed(grouped, chunk_size):
        comparison_ids, joined = zip(*batch, strict=True)
        yield Tallies.from_joined(
            comparison_ids=np.array(comparison_ids, dtype=np.int64),
            sources=sources,
            joined=pa.array(joined, pa.string()),
        )


def campaign_pairs_exported(*, campaign: Campaign, include_edits: bool) -> QuerySet[Comparison]:
    """The campaign's pairs an export may write: all, or (by default) those without an annotator's edit."""
    pairs = Comparison.objects.filter(campaign=campaign)
    # Joins of both candidates, not anti-joins on the edited responses: those ran in a second with fresh
    # statistics, but for minutes on a PostgreSQL database not yet analysed (docs/exports.md, Benchmark).
    return pairs if include_edits else pairs.filter(candidate_a__edited_from=None, candidate_b__edited_from=None)


def ranking_votes_counted(ranking_pairs: str) -> Q:
    """Which votes count, of those derived from rankings (annotator.ranking): all, or only best against worst."""
    return Q() if ranking_pairs == "all" else Q(ranking__isnull=True) | Q(details__best_worst=True)


_VOTE_FIELDS = ("id", "annotator_id", "verdict", "created_at", "strength", "ranking")
_PART, _VOTE = "|", ","  # between the fields of a vote, between the votes of a pair: neither is in any field


def _joinable(name: str) -> Any:
    return Coalesce(Cast(name, TextField()), Value(""), output_field=TextField()) if name == "ranking" else name


def _vote_fields(sources: tuple[str, ...]) -> tuple[str, ...]:
    """The fields of a counted vote as joined: the source too where there are two."""
    return (*_VOTE_FIELDS, "source") if len(sources) > 1 else _VOTE_FIELDS


class _Joined(Aggregate):
    """The group's values as text joined by commas (no order promised): GROUP_CONCAT on SQLite, STRING_AGG
    on PostgreSQL. Ids, verdicts, sources and timestamps hold no comma."""

    function = "GROUP_CONCAT"
    output_field = TextField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, Any]:
        joined = self.copy()
        joined.function, joined.template = "STRING_AGG", "%(function)s(CAST(%(expressions)s AS text), ',')"
        return joined.as_sql(compiler, connection, **extra_context)


@dataclass(frozen=True)
class Tallies:
    """One batch of `campaign_tallies`: pairs by comparison id, and their counted votes."""

    comparison_ids: np.ndarray
    counts: np.ndarray  # (pairs, sources, verdicts): counted votes per source and VERDICTS
    sources: tuple[str, ...]  # SOURCES_FOR_JUDGES[judges]
    owner: np.ndarray  # per counted vote, the index of its pair; by pair, then as cast (judgment id)
    source: np.ndarray  # per counted vote, its index into `sources`
    fields: dict[str, pa.Array]  # per counted vote: annotator_id (int64), verdict, created_at (as text), strength

    @classmethod
    def from_joined(cls, *, comparison_ids: np.ndarray, sources: tuple[str, ...], joined: pa.Array) -> "Tallies":
        """From each pair's counted votes as the database joined them (`_Joined`, null for none), in any order."""
        names = _vote_fields(sources)
        votes = pc.split_pattern(joined, _VOTE)
        owner = np.repeat(np.arange(len(joined)), pc.list_value_length(votes).fill_null(0).to_numpy())
        parts = pc.list_flatten(pc.split_pattern(pc.list_flatten(votes), _PART))  # each vote's fields, in turn
        column = {
            name: parts.take(pa.array(np.arange(index, len(parts), len(names)))) for index, name in enumerate(names)
        }
        ids = column["id"].cast(pa.int64()).to_numpy()
        order = np.arange(len(ids))
        if not ((np.diff(ids) > 0) | (np.diff(owner) > 0)).all():  # the database promises no order
            order = np.lexsort((ids, owner))
        taken = pa.array(order, pa.int64())
        verdict = pc.index_in(column["verdict"], value_set=pa.array([str(v) for v in VERDICTS])).to_numpy()[order]
        if "source" in column:
            source = pc.index_in(column["source"], value_set=pa.array(list(sources))).to_numpy()[order]
        else:
            source = np.zeros(len(order), dtype=np.int64)
        owner = owner[order]
        shape = (len(joined), len(sources), len(VERDICTS))
        cells = (owner * shape[1] + source) * shape[2] + verdict
        return cls(
            comparison_ids=comparison_ids,
            counts=np.bincount(cells, minlength=int(np.prod(shape))).reshape(shape),
            sources=sources,
            owner=owner,
            source=source,
            fields={
                "annotator_id": column["annotator_id"].take(taken).cast(pa.int64()),
                "verdict": column["verdict"].take(taken),
                "created_at": column["created_at"].take(taken),
                "strength": column["strength"].take(taken),
                "ranking_id": _ids_or_null(column["ranking"].take(taken)),
            },
        )

    def __len__(self) -> int:
        return len(self.comparison_ids)

    def votes(self, rows: np.ndarray, source: np.ndarray) -> CountedVotes:
        """The counted votes of the pairs at `rows` (indices into this batch), those of `source[i]` (an index
        into `sources`) for the i-th, in the order they were cast (by judgment id)."""
        position = np.full(len(self), -1)
        position[rows] = np.arange(len(rows))
        at = position[self.owner]  # per vote, the index in rows of its pair (-1: not asked for)
        picked = np.flatnonzero(at >= 0)
        picked = picked[self.source[picked] == source[at[picked]]]
        if not (np.diff(at[picked]) >= 0).all():  # rows not in this batch's order
            picked = picked[np.argsort(at[picked], kind="stable")]
        offsets = pa.array(np.concatenate([[0], np.cumsum(np.bincount(at[picked], minlength=len(rows)))]), pa.int32())
        taken = pa.array(picked, pa.int64())

        def listed(values: pa.Array) -> pa.ListArray:
            return pa.ListArray.from_arrays(offsets, values.take(taken))

        return CountedVotes(
            annotator_ids=listed(self.fields["annotator_id"]),
            verdicts=listed(self.fields["verdict"]),
            judged_at=listed(_utc(self.fields["created_at"])),
            strengths=listed(self.fields["strength"]),
            ranking_ids=listed(self.fields["ranking_id"]),
        )


def _ids_or_null(texts: pa.Array) -> pa.Array:
    """Ids as the database joined them, "" for none: int64, null for none."""
    return pc.if_else(
        pc.equal(texts, ""),
        pa.scalar(None, pa.int64()),
        pc.cast(pc.if_else(pc.equal(texts, ""), "0", texts), pa.int64()),
    )


def _utc(texts: pa.Array) -> pa.Array:
    """Timestamps as the database writes them as text: PostgreSQL with their offset; SQLite without one, in
    the connection's time zone (UTC unless DATABASES sets TIME_ZONE), as Django stores them."""
    if connection.features.supports_timezones:
        return texts.cast(UTC_TIME)
    return pc.assume_timezone(texts.cast(pa.timestamp("us")), connection.timezone_name).cast(UTC_TIME)


def _messages(texts: pa.Array) -> pa.ListArray:
    """Conversations stored as JSON texts, parsed by Arrow in one pass over the batch."""
    if not len(texts):
        return pa.array([], MESSAGES)
    lines = pc.binary_join_element_wise('{"v":', texts, "}\n", "")  # a new array: its text starts its buffer
    ends = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1)
    payload = lines.buffers()[2][: ends[-1]]  # one JSON object per line
    parsed = pj.read_json(
        pa.BufferReader(payload),
        read_options=pj.ReadOptions(block_size=max(len(payload), 1 << 20), use_threads=False),
        parse_options=pj.ParseOptions(explicit_schema=pa.schema([("v", MESSAGES)]), unexpected_field_behavior="ignore"),
    )
    return parsed.column("v").combine_chunks()


_AS_TEXT = {"sampling_params"}  # JSON, read as the text the database holds


def _one_parameter(ids: list[int]) -> RawSQL:
    """Ids as a subquery over one query parameter: `pk__in=ids` would bind (and check) each id in Python."""
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", [ids])
    return RawSQL("SELECT value FROM json_each(%s)", [json.dumps(ids)])


def pair_texts_for(*, comparison_ids: list[int]) -> pa.Table:
    """Prompt and both candidates of the given comparisons, in one query, ordered by comparison id: one row per
    comparison, with the columns of `rows.PAIRS`."""

    def text(name: str) -> Cast:
        return Cast(name, TextField())

    candidates = [
        text(f"candidate_{side}__{name}") if name in _AS_TEXT else f"candidate_{side}__{name}"
        for side in "ab"
        for name in CANDIDATE_FIELDS
    ]
    pairs = (
        Comparison.objects.filter(pk__in=_one_parameter(comparison_ids))
        .order_by("id")
        .values_list(
            "id", text("created_at"), "prompt_id", "prompt__content_hash", text("prompt__messages"),
            "prompt__system", *candidates,
        )
    )  # fmt: skip
    columns = list(zip(*_fetched(pairs), strict=True)) or [()] * len(PAIRS)
    arrays = []
    for field, values in zip(PAIRS, columns, strict=True):
        if field.name == "pair_created_at":
            arrays.append(_utc(pa.array(values, pa.string())))
        elif field.name == "messages":
            arrays.append(_messages(pa.array(values, pa.string())))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=PAIRS)
