"""Rows from JSONL or Parquet files, validated all at once: every bad row is named (file, line and field)
before anything is written. Used by the pair importer and by generation's prompt files."""

import datetime
import decimal
import io
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from core.errors import InputError

MAX_ERRORS_SHOWN = 20
Row = TypeVar("Row")


def records_format(name: str, explicit: str | None) -> str:
    """ "jsonl" or "parquet": as given, or from the file name's extension."""
    if explicit:
        if explicit not in ("jsonl", "parquet"):
            raise InputError(f"Unknown format {explicit!r}: use jsonl or parquet.")
        return explicit
    suffix = Path(name).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"Cannot tell the format of {name!r} from its extension: use .jsonl or .parquet.")


def _records_jsonl(stream: IO[bytes], name: str) -> Iterator[tuple[str, Any]]:
    """(where, record) per non-blank line; a line that is not JSON yields a ValueError as its record."""
    text = io.TextIOWrapper(stream, encoding="utf-8")
    try:
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                record: Any = json.loads(line)
            except json.JSONDecodeError as error:
                record = ValueError(f"not valid JSON ({error.msg} at column {error.colno})")
            yield f"{name}, line {number}", record
    except UnicodeDecodeError as error:
        raise InputError(f"{name}: not UTF-8 text ({error.reason} at byte {error.start}).") from None
    finally:
        text.detach()


def _records_parquet(stream: IO[bytes], name: str) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{name}: not a readable Parquet file ({error}).") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            number += 1
            yield f"{name}, row {number}", record


def _json_ready(value: Any, field: str) -> Any:
    """The value as JSON can store it (rows' extra fields become metadata): dates and times as ISO 8601
    text, decimals as text; what JSON has no way to hold (NaN, infinity, bytes) is a ValueError naming the
    field."""
    if isinstance(value, dict):
        return {key: _json_ready(item, f"{field}.{key}" if field else str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item, f"{field}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"field '{field}' is {value}, which JSON cannot hold: use null or a number")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"field '{field}' holds binary data, which cannot be kept: drop the column or encode it")
    return value


def records_parse(
    stream: IO[bytes],
    *,
    name: str,
    file_format: str | None,
    parse: Callable[[str, dict[str, Any]], Row],
    refusal: str,
) -> list[Row]:
    """Parse every row with `parse(where, record)`, which raises ValueError naming the field at fault.

    Any bad row: one InputError listing them all (up to MAX_ERRORS_SHOWN), then `refusal`, e.g.
    "nothing was imported. Fix them and import again".
    """
    kind = records_format(name, file_format)
    records = _records_jsonl(stream, name) if kind == "jsonl" else _records_parquet(stream, name)
    rows: list[Row] = []
    errors: list[str] = []
    for where, record in records:
        try:
            if isinstance(record, ValueError):
                raise record
            if not isinstance(record, dict):
                raise ValueError("must be a JSON object")
            rows.append(parse(where, _json_ready(record, "")))
        except ValueError as error:
            errors.append(f"{where}: {error}")
    if errors:
        shown = "\n".join(f"  - {e}" for e in errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise InputError(f"{len(errors)} bad row(s) in {name}; {refusal}:\n{shown}{more}")
    return rows
