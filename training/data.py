"""Find and check the preference data of a run before any model is loaded.

A run reads TRL's preference format, as `exports` writes it: columns `prompt`, `chosen`, `rejected`, either all
plain strings, or conversational (`prompt` a list of {role, content} messages, `chosen`/`rejected` a list with the
assistant's message). Other columns (provenance) are ignored. Every problem names the file and the rows
(counted from 1, as `import_pairs` does), so a bad export fails in a second, not after the model has loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.checksums import file_sha256
from core.errors import InputError
from llm.lengths import LengthMeter

COLUMNS = ("prompt", "chosen", "rejected")
STRING = "string"
CONVERSATIONAL = "conversational"
SHOWN_ROWS = 10


@dataclass(frozen=True)
class PreferenceFile:
    split: str  # "train" or "validation"
    path: Path
    rows: int
    sha256: str
    format: str  # STRING or CONVERSATIONAL

    def as_record(self) -> dict[str, Any]:
        return {"path": str(self.path), "rows": self.rows, "sha256": self.sha256, "format": self.format}


@dataclass(frozen=True)
class PreferenceData:
    """The files a run trains and evaluates on, checked, with their checksums."""

    source: str  # what the user gave as --data
    train: PreferenceFile
    validation: PreferenceFile | None
    export_id: int | None = None

    @property
    def format(self) -> str:
        return self.train.format

    def files(self) -> dict[str, dict[str, Any]]:
        return {f.split: f.as_record() for f in (self.train, self.validation) if f is not None}


# ---------------------------------------------------------------------------------------------------------
# Finding the files


def preference_data_resolve(source: str) -> tuple[Path, Path | None, int | None]:
    """(train file, validation file or None, export id or None) for a directory, a Parquet file or an export id."""
    source = str(source).strip()
    if source.isdigit() and not Path(source).exists():
        return _export_files(int(source))
    path = Path(source).expanduser()
    if path.is_dir():
        train = path / "train.parquet"
        if not train.is_file():
            raise InputError(
                f"{path} holds no train.parquet: give an export directory (train.parquet, optional "
                "validation.parquet), a Parquet file, or an export id."
            )
        validation = path / "validation.parquet"
        return train, (validation if validation.is_file() else None), None
    if path.is_file():
        if path.suffix.lower() != ".parquet":
            raise InputError(f"{path} is not a .parquet file: training reads the Parquet files that exports write.")
        return path, None, None
    raise InputError(f"--data {source}: no such file, directory or export id.")


def _export_files(export_id: int) -> tuple[Path, Path | None, int]:
    from core.models import JobStatus
    from exports.models import DatasetExport
    from exports.selectors import dataset_export_file_check

    export = DatasetExport.objects.filter(pk=export_id).first()
    if export is None:
        raise InputError(f"--data {export_id}: there is no export with id {export_id}.")
    if export.status != JobStatus.SUCCEEDED:
        raise InputError(f"Export {export_id} is {export.status}, not succeeded: there are no files to train on yet.")
    train = dataset_export_file_check(export=export, name="train")
    validation = dataset_export_file_check(export=export, name="validation")
    if not train.on_disk:
        raise InputError(f"Export {export_id}: its train file ({train.path or 'no path recorded'}) is missing.")
    if validation.path is not None and not validation.on_disk:
        raise InputError(f"Export {export_id}: its validation file {validation.path} is missing.")
    for file in (train, validation):
        if file.on_disk and not file.intact:
            raise InputError(
                f"Export {export_id}: {file.path} has changed since the export (its sha256 differs from the one "
                "recorded): export again rather than train on an unknown file."
            )
    return train.path, validation.path, export_id


# ---------------------------------------------------------------------------------------------------------
# Checking them


def preference_data_load(source: str) -> PreferenceData:
    """Resolve `--data` and check every file; raise InputError naming the file and rows on any problem."""
    train_path, validation_path, export_id = preference_data_resolve(source)
    train = preference_file_check(train_path, split="train")
    validation = preference_file_check(validation_path, split="validation") if validation_path else None
    if validation is not None and validation.format != train.format:
        raise InputError(
            f"{train.path} is {train.format} but {validation.path} is {validation.format}: both splits must "
            "use the same format."
        )
    return PreferenceData(source=str(source), train=train, validation=validation, export_id=export_id)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The prompt/chosen/rejected columns of a Parquet file, as Python rows (provenance columns left out)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: not a readable Parquet file ({error}).") from None
    missing = [column for column in COLUMNS if column not in schema.names]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}. A preference file needs prompt, chosen and "
            f"rejected (TRL's format); it has {', '.join(schema.names) or 'none'}."
        )
    return pq.read_table(path, columns=list(COLUMNS)).to_pylist()


def preference_file_check(path: Path, *, split: str) -> PreferenceFile:
    rows = read_rows(path)
    if not rows:
        raise InputError(f"{path} holds no rows: there is nothing to train on. Judge more pairs and export again.")

    problems: dict[str, list[int]] = {}
    formats: set[str] = set()

    def flag(problem: str, number: int) -> None:
        problems.setdefault(problem, []).append(number)

    for number, row in enumerate(rows, start=1):
        row_format = _row_format(row, number, flag)
        if row_format is None:
            continue
        formats.add(row_format)
        chosen, rejected = _response_text(row["chosen"]), _response_text(row["rejected"])
        if chosen == rejected:
            flag("chosen == rejected (a pair that teaches nothing: drop it)", number)
        elif not chosen.strip() or not rejected.strip():
            flag("an empty chosen or rejected response", number)

    if problems:
        lines = [f"{problem}: {_rows_text(numbers)}" for problem, numbers in sorted(problems.items(), key=_first_row)]
        count = sum(map(len, problems.values()))
        raise InputError(
            f"{path} ({split}): {count} problem(s), fix them and export again:\n  - " + "\n  - ".join(lines)
        )
    # A Parquet column has one type, so a file that passed the checks above is all strings or all messages.
    file_format = CONVERSATIONAL if CONVERSATIONAL in formats else STRING
    return PreferenceFile(split=split, path=path, rows=len(rows), sha256=file_sha256(path), format=file_format)


def _first_row(item: tuple[str, list[int]]) -> int:
    return item[1][0]


def _row_format(row: dict[str, Any], number: int, flag) -> str | None:
    """STRING or CONVERSATIONAL when the row is well formed, else None (and the problem is flagged)."""
    for column in COLUMNS:
        if row[column] is None:
            flag(f"{column} is null", number)
            return None
    prompt, chosen, rejected = row["prompt"], row["chosen"], row["rejected"]
    if isinstance(prompt, str) and isinstance(chosen, str) and isinstance(rejected, str):
        return STRING
    kinds = {column: _kind(row[column]) for column in COLUMNS}
    if all(kind == "messages" for kind in kinds.values()):
        if not prompt:
            flag("an empty prompt conversation", number)
            return None
        for column in ("chosen", "rejected"):
            if len(row[column]) != 1 or row[column][0]["role"] != "assistant":
                flag(f"{column} is not one assistant message ([{{'role': 'assistant', 'content': ...}}])", number)
                return None
        return CONVERSATIONAL
    if any(kind == "other" for kind in kinds.values()):
        bad = next(column for column, kind in kinds.items() if kind == "other")
        flag(f"{bad} is neither a string nor a list of {{role, content}} messages", number)
    else:
        described = ", ".join(f"{c} {'a string' if k == 'string' else 'messages'}" for c, k in kinds.items())
        flag(
            f"prompt/response types don't match ({described}): use strings for all three, or message lists "
            "for all three (TRL's conversational format)",
            number,
        )
    return None


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        return "messages"
    return "other"


def _response_text(value: Any) -> str:
    return value if isinstance(value, str) else "\n".join(m["content"] for m in value)


def _rows_text(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:SHOWN_ROWS]))
    more = f" and {len(numbers) - SHOWN_ROWS} more" if len(numbers) > SHOWN_ROWS else ""
    return f"row {shown}" if len(numbers) == 1 else f"{len(numbers)} rows: {shown}{more}"


# ---------------------------------------------------------------------------------------------------------
# Against the model's tokenizer (still before the model loads)


def data_format_check(data: PreferenceData, tokenizer: Any, *, model: str, allow_string_rows: bool = False) -> None:
    """Refuse data whose format does not fit the model: trained on it, the model would learn from a context it
    does not write in. Conversational rows need the chat template that renders them; plain-string rows for a
    model that has one are raw text around which it chats with its template, so they are refused unless
    `allow_string_rows` (they may really be raw completions the model sampled without its template)."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if data.format == CONVERSATIONAL and not has_template:
        raise InputError(
            f"{data.train.path} is conversational (lists of messages) but {model}'s tokenizer has no chat "
            "template to render them: use a chat model, or export the campaign in the string format "
            "(export_preferences --format string; --format auto does so when the responses were sampled as raw "
            "text completions)."
        )
    if data.format == STRING and has_template and not allow_string_rows:
        raise InputError(
            f"{data.train.path} holds plain-string rows (prompt, chosen and rejected as text) but {model}'s "
            "tokenizer has a chat template: DPO would train the model on prompt + response + EOS with no chat "
            "template around them, text it never produces when it chats. Export the campaign in the "
            "conversational format (export_preferences --format conversational; --format auto does so when the "
            "responses were sampled through the chat template), or, if these strings are what this model should "
            "learn (raw completions it sampled without its template), pass --allow-string-rows-with-chat-template "
            "(allow_string_rows_with_chat_template: true in a config file)."
        )


# ---------------------------------------------------------------------------------------------------------
# Lengths, once a tokenizer is at hand (still before the model loads)


@dataclass(frozen=True)
class LengthReport:
    dropped: list[int]  # rows whose prompt alone fills max_length: TRL drops them silently
    truncated: list[int]  # rows whose prompt + longer response exceeds max_length: TRL cuts the response

    def describe(self, path: Path, max_length: int) -> list[str]:
        lines = []
        if self.dropped:
            lines.append(
                f"{path}: {len(self.dropped)} row(s) dropped, their prompt alone fills max_length={max_length} "
                f"tokens ({_rows_text(self.dropped)}); raise --max-length to keep them."
            )
        if self.truncated:
            lines.append(
                f"{path}: {len(self.truncated)} row(s) truncated to max_length={max_length} tokens "
                f"({_rows_text(self.truncated)})."
            )
        return lines


def length_report(rows: list[dict[str, Any]], tokenizer: Any, max_length: int) -> LengthReport:
    """Find the rows TRL would drop (prompt >= max_length tokens) or truncate, tokenizing as TRL does."""
    conversational = bool(rows) and not isinstance(rows[0]["prompt"], str)  # a checked file is one or the other
    lengths = LengthMeter(tokenizer=tokenizer, conversational=conversational).measure(rows)
    dropped = [number for number, length in enumerate(lengths, start=1) if length.prompt_fills(max_length)]
    truncated = [
        number
        for number, length in enumerate(lengths, start=1)
        if length.overlong(max_length) and not length.prompt_fills(max_length)
    ]
    return LengthReport(dropped=dropped, truncated=truncated)


# ---------------------------------------------------------------------------------------------------------
# As datasets, for TRL


def rows_dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def parquet_dataset(path: Path):
    """The preference columns of a Parquet file, as a dataset with an on-disk cache (shared by processes)."""
    from datasets import Dataset

    return Dataset.from_parquet(str(path), columns=list(COLUMNS))
