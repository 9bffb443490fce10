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
from django.db.models import Aggregate, Count, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

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


def campaign_tallies(*, campaign: Campaign, judges: str, chunk_size: int) -> Iterator["Tallies"]:
    """The vote counts of every pair with a judgment from `judges` (skips included), by comparison id, in
    batches of `chunk_size` pairs.

    One grouped query over the campaign's judgments: per pair, its counted votes per source and verdict, and
    the counted (non-skip) votes themselves, each field joined into one text, read only for exported rows.
    """
    sources = SOURCES_FOR_JUDGES[judges]
    by_source = len(sources) > 1  # else the WHERE clause holds the one source
    counts = {
        f"n_{source}_{verdict}": Count("id", filter=Q(verdict=verdict, **({"source": source} if by_source else {})))
        for source in sources
        for verdict in VERDICTS
    }
    cast = ~Q(verdict=Verdict.SKIP)
    fields = [*_VOTE_FIELDS, "source"] if by_source else list(_VOTE_FIELDS)
    lists = {f"all_{field}": _Joined(field, filter=cast) for field in fields}
    grouped = (
        Judgment.objects.filter(
            comparison_id__in=Comparison.objects.filter(prompt__campaign=campaign).values("id"),
            source__in=sources,
        )
        .values("comparison_id")
        .annotate(**counts, **lists)
        .order_by("comparison_id")
        .values_list("comparison_id", *counts, *lists)
    )
    shape = (len(sources), len(VERDICTS))
    for batch in _streamed(grouped, chunk_size):
        columns = list(zip(*batch, strict=True))
        yield Tallies(
            comparison_ids=np.array(columns[0], dtype=np.int64),
            counts=np.array(columns[1 : 1 + len(counts)], dtype=np.int64).T.reshape(len(batch), *shape),
            sources=sources,
            joined={
                field: pa.array(values, pa.string())
                for field, values in zip(fields, columns[1 + len(counts) :], strict=True)
            },
        )


_VOTE_FIELDS = ("id", "annotator_id", "verdict", "created_at")


class _Joined(Aggregate):
    """The group's values as text joined by commas (no order promised): GROUP_CONCAT on SQLite, STRING_AGG
    on PostgreSQL. Ids, verdicts and timestamps hold no comma."""

    function = "GROUP_CONCAT"
    output_field = TextField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, Any]:
        joined = self.copy()
        joined.function, joined.template = "STRING_AGG", "%(function)s(CAST(%(expressions)s AS text), ',')"
        return joined.as_sql(compiler, connection, **extra_context)


@dataclass(frozen=True)
class Tallies:
    """One batch of `campaign_tallies`: pairs by comparison id."""

    comparison_ids: np.ndarray
    counts: np.ndarray  # (pairs, sources, verdicts): counted votes per source and VERDICTS
    sources: tuple[str, ...]  # SOURCES_FOR_JUDGES[judges]
    joined: dict[str, pa.Array]  # field -> per pair, its counted votes' values joined by commas (null: none)

    def __len__(self) -> int:
        return len(self.comparison_ids)

    def votes(self, rows: np.ndarray, source: np.ndarray) -> CountedVotes:
        """The counted votes of the pairs at `rows` (indices into this batch), those of `source[i]` (an index
        into `sources`) for the i-th, in the order they were cast (by judgment id)."""
        taken = pa.array(rows)
        split = {field: pc.split_pattern(values.take(taken), ",") for field, values in self.joined.items()}
        offsets = split["id"].offsets.to_numpy()
        owner = np.repeat(np.arange(len(rows)), np.diff(offsets))  # the pair of each vote
        keep = np.ones(len(owner), dtype=bool)
        if "source" in split:
            wanted = np.array(self.sources, dtype=object)[source][owner]
            keep = split["source"].flatten().to_numpy(zero_copy_only=False) == wanted
        ids = split["id"].flatten().cast(pa.int64()).to_numpy()
        order = np.arange(len(ids))
        if not ((np.diff(ids) > 0) | (np.diff(owner) > 0)).all():  # the database promises no order
            order = np.lexsort((ids, owner))
        order = order[keep[order]]
        kept_offsets = pa.array(np.concatenate([[0], np.cumsum(np.bincount(owner[order], minlength=len(rows)))]),
                                pa.int32())  # fmt: skip
        times = split["created_at"].flatten()

        def listed(values: pa.Array) -> pa.ListArray:
            return pa.ListArray.from_arrays(kept_offsets, values.take(pa.array(order)))

        return CountedVotes(
            annotator_ids=listed(split["annotator_id"].flatten().cast(pa.int64())),
            verdicts=listed(split["verdict"].flatten()),
            judged_at=listed(_utc(times)),
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
