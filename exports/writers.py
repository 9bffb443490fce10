"""Files of an export: the Parquet schema, streaming split writers, and an all-or-nothing file set.

`AtomicFileSet` owns an output directory for the time of one export: it takes an exclusive lock on it,
hands out temporary files (`.train.parquet.tmp-XXXX`), and on `commit()` fsyncs them and renames them all
to their final names. Leaving the `with` block without a commit (an exception, Ctrl-C, SIGTERM turned into
SystemExit) deletes every temporary file, so a failed export leaves nothing behind. A SIGKILL cannot be
cleaned up after: its temporary files are swept by the next export into the same directory.
"""

import fcntl
import json
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import ConflictError, InputError

# Every file name an export may write: a new export replaces the whole set (stale ones are removed).
DATA_FILES = ("train.parquet", "validation.parquet", "train.jsonl", "validation.jsonl")
CARD_FILE = "README.md"
MANAGED_FILES = (*DATA_FILES, CARD_FILE)
MARKER_FILE = ".preference-studio-export"  # lets a later export replace the files here
FLUSH_ROWS = 8192  # rows per row group, at least: fewer, larger groups encode faster and compress better

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
UTC_TIME = pa.timestamp("us", tz="UTC")


def _field(name: str, kind: pa.DataType, description: str, *, nullable: bool = False) -> pa.Field:
    return pa.field(name, kind, nullable=nullable, metadata={"description": description})


def parquet_schema(*, conversational: bool) -> pa.Schema:
    """The columns of a TRL export, with their descriptions (kept in the file and shown in the card)."""
    if conversational:
        texts = [
            _field("prompt", MESSAGES, "The conversation, {role, content} messages, system message first if any."),
            _field("chosen", MESSAGES, "The preferred response: one assistant message."),
            _field("rejected", MESSAGES, "The other response: one assistant message."),
        ]
    else:
        texts = [
            _field(
                "prompt",
                pa.string(),
                "Exactly the text the model continued when it wrote the responses (an imported prompt: the user "
                "message and a blank line); TRL adds no separator.",
            ),
            _field("chosen", pa.string(), "The preferred response."),
            _field("rejected", pa.string(), "The other response."),
        ]
    return pa.schema(
        [
            *texts,
            _field("comparison_id", pa.int64(), "Comparison (pair) id in Preference Studio."),
            _field("prompt_id", pa.int64(), "Prompt id."),
            _field("prompt_hash", pa.string(), "sha256 of the system message and conversation; decides the split."),
            _field("chosen_side", pa.string(), "Which candidate of the pair won: a or b."),
            _field("chosen_candidate_id", pa.int64(), "Candidate id of the chosen response."),
            _field("rejected_candidate_id", pa.int64(), "Candidate id of the rejected response."),
            _field("chosen_model", pa.string(), "Model that wrote the chosen response (empty if unknown)."),
            _field("rejected_model", pa.string(), "Model that wrote the rejected response (empty if unknown)."),
            _field("chosen_sampling_params", pa.string(), "Sampling parameters of the chosen response, JSON."),
            _field("rejected_sampling_params", pa.string(), "Sampling parameters of the rejected response, JSON."),
            _field("chosen_seed", pa.int64(), "Sampling seed of the chosen response.", nullable=True),
            _field("rejected_seed", pa.int64(), "Sampling seed of the rejected response.", nullable=True),
            _field(
                "chosen_edited_from",
                pa.int64(),
                "The chosen response is an annotator's edit of this candidate (not the model's own sample); empty "
                "for the model's own. Edits are exported only with include_edits.",
                nullable=True,
            ),
            _field(
                "rejected_edited_from",
                pa.int64(),
                "The same for the rejected response.",
                nullable=True,
            ),
            _field("votes", pa.int32(), "Counted votes: non-skip judgments of the selected judges."),
            _field("agreement", pa.float64(), "Share of the counted votes that agree with the majority."),
            _field("judge_source", pa.string(), "Who judged: human or ai."),
            _field("annotator_ids", pa.list_(pa.int64()), "User ids of the judges whose votes counted."),
            _field(
                "annotator_votes",
                pa.list_(pa.string()),
                "Each judge's vote, aligned with annotator_ids: chosen, rejected, tie or both_bad.",
            ),
            _field("judged_at", pa.list_(UTC_TIME), "When each counted vote was cast, aligned with annotator_ids."),
            _field(
                "ranking_ids",
                pa.list_(pa.int64()),
                "The ranking each counted vote was derived from, aligned with annotator_ids; empty for a vote on "
                "the pair itself.",
            ),
            _field(
                "strength",
                pa.list_(pa.string()),
                "How much better each judge said their side was, aligned with annotator_ids: slightly, clearly, "
                "or empty when not said (campaigns that ask). TRL ignores it.",
            ),
            _field(
                "margin",
                pa.float64(),
                "How surely the chosen response won, -1 to 1: the mean over the counted votes of +1 for chosen, -1 "
                "for rejected, 0 for tie or both bad, halved for a vote said to be only slightly better. Filter or "
                "weight on it; TRL ignores it.",
            ),
            _field("pair_created_at", UTC_TIME, "When the pair was created."),
        ]
    )


def column_descriptions(schema: pa.Schema) -> list[tuple[str, str, str]]:
    """(name, type, description) per column, for the dataset card."""
    return [(f.name, str(f.type), (f.metadata or {}).get(b"description", b"").decode()) for f in schema]


class AtomicFileSet:
    """Temporary files in one directory that all become their final names on commit, or all vanish."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._temps: dict[str, Path] = {}
        self._dir_fd: int | None = None
        self._committed = False

    def __enter__(self) -> "AtomicFileSet":
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._dir_fd = os.open(self.directory, os.O_RDONLY)
        except OSError as error:
            raise InputError(
                f"Cannot write an export to {self.directory}: {error.strerror}. Choose a writable directory."
            ) from None
        self._refuse_foreign_files()
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._dir_fd)
            raise ConflictError(
                f"Another export is writing to {self.directory} right now: wait for it to finish or choose "
                "another output directory."
            ) from None
        self._sweep_stale_temporaries()
        return self

    def _refuse_foreign_files(self) -> None:
        """An export replaces README.md, train.* and validation.* in its directory: only ever in an empty
        directory or one an earlier export wrote (it holds the marker file), never over a user's own files."""
        if (self.directory / MARKER_FILE).exists():
            return
        leftovers = tuple(f".{name}.tmp-" for name in MANAGED_FILES)  # of a killed export: swept below
        present = sorted(entry.name for entry in self.directory.iterdir() if not entry.name.startswith(leftovers))
        if present:
            os.close(self._dir_fd)
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise InputError(
                f"{self.directory} already holds files that no export wrote ({shown}): an export would replace "
                "README.md, train.* and validation.* there. Choose a new or empty directory."
            )

    def _sweep_stale_temporaries(self) -> None:
        """Remove what a killed export left: we hold the lock, so no live export owns these."""
        for name in MANAGED_FILES:
            for stale in self.directory.glob(f".{name}.tmp-*"):
                stale.unlink(missing_ok=True)

    def temporary(self, name: str) -> Path:
        if name not in MANAGED_FILES:
            raise ValueError(f"{name} is not a file an export writes")
        if name in self._temps:
            return self._temps[name]
        fd, path = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.tmp-")
        os.fchmod(fd, 0o644)
        os.close(fd)
        self._temps[name] = Path(path)
        return self._temps[name]

    def final(self, name: str) -> Path:
        return self.directory / name

    def commit(self) -> None:
        """fsync every temporary file, rename them all, remove files of an earlier export not replaced."""
        for path in self._temps.values():
            with path.open("rb+") as handle:
                os.fsync(handle.fileno())
        for name, path in self._temps.items():
            os.replace(path, self.final(name))
        for name in MANAGED_FILES:
            if name not in self._temps:
                self.final(name).unlink(missing_ok=True)
        (self.directory / MARKER_FILE).write_text(
            "This directory holds a Preference Studio export; the next export into it replaces its files.\n"
        )
        os.fsync(self._dir_fd)
        self._committed = True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if not self._committed:
                for path in self._temps.values():
                    path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._dir_fd, fcntl.LOCK_UN)
            os.close(self._dir_fd)


class SplitWriter:
    """Streams batches of rows of one split to a temporary file, opened on the first row (an empty split writes
    none)."""

    def __init__(self, files: AtomicFileSet, name: str) -> None:
        self.files = files
        self.name = name
        self.rows = 0

    @property
    def path(self) -> Path | None:
        return self.files.final(self.name) if self.rows else None

    def write(self, batch: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write what is buffered and close the file."""
        raise NotImplementedError

    def discard(self) -> None:
        """Close without writing what is buffered (the export failed; the file set deletes the file)."""
        raise NotImplementedError


class ParquetSplitWriter(SplitWriter):
    """Buffers tables until they hold FLUSH_ROWS rows, then writes them as one row group with the fixed schema
    (same types in every batch).

    Encoding and compressing a row group is most of the cost of writing it, and Arrow does it without holding
    Python's lock: it runs on a thread of its own while the export reads and shapes the next batch. One row group
    is written at a time (the next waits for it), so memory stays bounded, and its errors surface at the next
    write or at close.
    """

    def __init__(self, files: AtomicFileSet, name: str, schema: pa.Schema) -> None:
        super().__init__(files, name)
        self.schema = schema
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def write(self, batch: pa.Table) -> None:
        """Write a table of rows with this writer's schema."""
        if not batch.num_rows:
            return
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        if self._buffered >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer, self._buffered = [], 0
        self._wait()
        if self._thread is None:
            self._writer = pq.ParquetWriter(self.files.temporary(self.name), self.schema, compression="zstd")
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{self.name}")
        self._pending = self._thread.submit(self._writer.write_table, table, row_group_size=table.num_rows)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self._flush()
            self._wait()
        finally:
            self.discard()

    def discard(self) -> None:
        self._buffer, self._buffered = [], 0
        if self._thread is not None:
            self._thread.shutdown(wait=True)  # the row group being written, if any, finishes first
            self._thread, self._pending = None, None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class JsonlSplitWriter(SplitWriter):
    def __init__(self, files: AtomicFileSet, name: str) -> None:
        super().__init__(files, name)
        self._handle = None

    def write(self, batch: list[dict[str, Any]]) -> None:
        """Write rows, each a JSON object on its own line."""
        if not batch:
            return
        if self._handle is None:
            self._handle = self.files.temporary(self.name).open("w", encoding="utf-8")
        self._handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in batch)
        self.rows += len(batch)

    def close(self) -> None:
        self.discard()

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
