"""Read the prompts to generate for, from JSONL or Parquet: validate every row first, refuse the file if any is bad.

A row holds `prompt` (a string, or a list of role/content messages ending with a user turn) and an
optional `system`; `metadata` (an object) and every other field are kept as the prompt's metadata.
A prompt that appears twice in the file is generated for once.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.conversations import Message, conversation_hash, conversation_normalize
from core.errors import InputError
from core.records import records_parse

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


def _parse_row(where: str, record: dict[str, Any]) -> PromptRow:
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
    rows = records_parse(
        stream,
        name=name,
        file_format=file_format,
        parse=_parse_row,
        refusal="nothing was generated. Fix them first",
    )
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
