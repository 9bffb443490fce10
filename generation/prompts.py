"""Read the prompts to generate for, from JSONL or Parquet: validate every row first, refuse the file if any is bad.

A row holds `prompt` (a string, or a list of role/content messages ending with a user turn) and an
optional `system`; `metadata` (an object) and every other field are kept as the prompt's metadata.
A prompt that appears twice in the file is generated for once.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from annotator.conversations import Message, conversation_hash, conversation_normalize
from annotator.errors import InputError

# The record readers of the pair importer: the same file formats, line numbers and error messages.
from annotator.importing import _detect_format, _records_jsonl, _records_parquet

MAX_ERRORS_SHOWN = 20
KNOWN_FIELDS = {"prompt", "system", "metadata"}


@dataclass(frozen=True)
class PromptRow:
    where: str  # "file.jsonl, line 3", or "campaign 'X', prompt 12" for prompts already in a campaign
    messages: list[Message]
    system: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return conversation_hash(self.messages, self.system)


@dataclass(frozen=True)
class PromptFile:
    rows: list[PromptRow]  # one per distinct prompt, in file order
    repeated: int  # rows whose prompt appeared earlier in the file


def _parse_row(where: str, record: Any) -> PromptRow:
    if not isinstance(record, dict):
        # A line the reader could not decode carries its reason (not valid JSON ...).
        raise ValueError(getattr(record, "reason", "must be a JSON object"))
    if record.get("prompt") is None:
        raise ValueError("field 'prompt' is missing")
    messages, system = conversation_normalize(record["prompt"], record.get("system"))
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("field 'metadata' must be an object")
    metadata = {**{k: v for k, v in record.items() if k not in KNOWN_FIELDS}, **metadata}
    return PromptRow(where=where, messages=messages, system=system, metadata=metadata)


def prompts_read(stream: IO[bytes], *, name: str, file_format: str | None = None) -> PromptFile:
    """Parse and validate every row; raise one InputError that lists the bad rows (line and field)."""
    kind = _detect_format(name, file_format)
    records = _records_jsonl(stream, name) if kind == "jsonl" else _records_parquet(stream, name)
    rows: list[PromptRow] = []
    errors: list[str] = []
    for where, record in records:
        try:
            rows.append(_parse_row(where, record))
        except ValueError as error:
            errors.append(f"{where}: {error}")
    if errors:
        shown = "\n".join(f"  - {e}" for e in errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise InputError(f"{len(errors)} bad row(s) in {name}; nothing was generated. Fix them first:\n{shown}{more}")
    if not rows:
        raise InputError(f"{name} holds no prompts: nothing to generate.")
    distinct: dict[str, PromptRow] = {}
    for row in rows:
        distinct.setdefault(row.content_hash, row)
    return PromptFile(rows=list(distinct.values()), repeated=len(rows) - len(distinct))


def prompts_read_path(path: str | Path, *, file_format: str | None = None) -> PromptFile:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file. Give the path of a .jsonl or .parquet file of prompts.")
    with path.open("rb") as stream:
        return prompts_read(stream, name=str(path), file_format=file_format)
