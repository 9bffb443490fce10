"""Rows from JSONL or Parquet files, validated all at once: every bad row is named (file, line and field)
before anything is written. Used by the pair importer and by generation's prompt files.

Every value is checked against core.limits on the way (text the database can store, JSON not nested too
deep), so what `parse` gets can be written as it is.
"""

import datetime
import decimal
import io
import json
import math
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import IO, Any, TypeVar

from django.conf import settings

from core.errors import InputError
from core.limits import JSON_MAX_DEPTH, json_too_deep, text_check

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
            except RecursionError:
                record = ValueError(f"not valid JSON (nested more than {JSON_MAX_DEPTH} levels deep)")
            except ValueError as error:  # a number too long for Python to read, ...
                record = ValueError(f"not valid JSON ({error})")
            yield f"{name}, line {number}", record
    except UnicodeDecodeError as error:
        raise InputError(f"{name}: not UTF-8 text ({error.reason} at byte {error.start}).") from None
    finally:
        text.detach()


def _records_parquet(stream: IO[bytes], name: str) -> Iterator[tuple[str, Any]]:
    """(where, record) per row, read one row group at a time: a group that cannot be read (a corrupt page, text
    that is not UTF-8, a date beyond Python's) is an InputError naming it, its rows and the column at fault."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{name}: not a readable Parquet file ({error}).") from None
    except UnicodeDecodeError:  # a column name in its schema that is not UTF-8
        raise InputError(f"{name}: a column name in its schema is not UTF-8 text: write the file again.") from None
    number = 0
    for group in range(parquet.num_row_groups):
        first = number + 1
        batches = parquet.iter_batches(batch_size=1024, row_groups=[group])
        while True:
            try:
                batch = next(batches, None)
                records = None if batch is None else batch.to_pylist()
            except (pa.ArrowException, OSError, ValueError, OverflowError) as error:
                last = first - 1 + parquet.metadata.row_group(group).num_rows
                column = _parquet_unreadable_column(parquet, group)
                raise InputError(
                    f"{name}, row group {group + 1} (rows {first}-{last})"
                    + (f", column {column!r}" if column else "")
                    + f": cannot be read ({error}): write the file again."
                ) from None
            if records is None:
                break
            for record in records:
                number += 1
                yield f"{name}, row {number}", record


def _parquet_unreadable_column(parquet: Any, group: int) -> str | None:
    """The first column of a row group that fails to read on its own, if one does."""
    import pyarrow as pa

    for column in parquet.schema_arrow.names:
        try:
            parquet.read_row_group(group, columns=[column]).to_pylist()
        except (pa.ArrowException, OSError, ValueError, OverflowError):
            return column
    return None


def _json_ready(value: Any, field: str) -> Any:
    """The value as JSON can store it (rows' extra fields become metadata): dates and times as ISO 8601
    text, decimals as text; what JSON has no way to hold (NaN, infinity, bytes, UUIDs, ...) and text the
    database cannot store are ValueErrors naming the field."""
    if isinstance(value, str):
        text_check(value, what=f"field '{field}'")
        return value
    if isinstance(value, dict):
        ready = {}
        for key, item in value.items():
            path = f"{field}.{key}" if field else str(key)
            text_check(str(key), what=f"the name of field {path!r}")
            ready[key] = _json_ready(item, path)
        return ready
    if isinstance(value, list | tuple):
        return [_json_ready(item, f"{field}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"field '{field}' is {value}, which JSON cannot hold: use null or a number")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"field '{field}' holds binary data, which cannot be kept: drop the column or encode it")
    raise ValueError(
        f"field '{field}' holds a {type(value).__name__}, which cannot be kept as JSON: "
        "cast the column to a string or a number"
    )


def _nesting_check(record: dict[str, Any]) -> None:
    for key, value in record.items():
        if json_too_deep(value, limit=JSON_MAX_DEPTH - 1):  # the row itself is the first level
            raise ValueError(f"field '{key}' is nested more than {JSON_MAX_DEPTH} levels deep: flatten it")


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
    "nothing was imported. Fix them and import again". A file of more than settings.MAX_IMPORT_ROWS rows is
    refused as soon as the reading gets past them.
    """
    max_rows = settings.MAX_IMPORT_ROWS
    kind = records_format(name, file_format)
    reader = _records_jsonl(stream, name) if kind == "jsonl" else _records_parquet(stream, name)
    rows: list[Row] = []
    errors: list[str] = []
    with closing(reader) as records:  # closed while the stream is still open, even when reading stops early
        for count, (where, record) in enumerate(records, start=1):
            if count > max_rows:
                raise InputError(
                    f"{name} holds more than {max_rows:,} rows, the most one import takes "
                    "(PREFSTUDIO_MAX_IMPORT_ROWS): split it into smaller files."
                )
            try:
                if isinstance(record, ValueError):
                    raise record
                if not isinstance(record, dict):
                    raise ValueError("must be a JSON object")
                _nesting_check(record)
                rows.append(parse(where, _json_ready(record, "")))
            except ValueError as error:
                errors.append(f"{where}: {error}")
    if errors:
        shown = "\n".join(f"  - {e}" for e in errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise InputError(f"{len(errors)} bad row(s) in {name}; {refusal}:\n{shown}{more}")
    return rows
