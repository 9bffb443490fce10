"""Import pairs of responses from JSONL or Parquet: validate every row first, then write all or nothing.

A row holds `prompt` (a string or a list of role/content messages), `response_a`, `response_b`, an
optional `system` and `metadata`; every other field is kept in the comparison's metadata. Optional
provenance per side: `model_a`/`model_b` (or a `models` list of two). Every value must fit where it is
stored: prompts and responses within settings.MAX_PROMPT_CHARS and MAX_RESPONSE_CHARS, model names within
their column, no text the database cannot store (core.records checks that for every field).
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotator.models import Campaign, Candidate, Comparison, Prompt, PromptFormat
from annotator.services import campaign_get_or_create
from core.conversations import Message, conversation_hash, conversation_normalize
from core.errors import InputError
from core.limits import length_check
from core.records import records_parse

KNOWN_FIELDS = {"prompt", "system", "response_a", "response_b", "metadata", "model_a", "model_b"}
MODEL_NAME_MAX_CHARS = Candidate._meta.get_field("model_name").max_length


@dataclass(frozen=True)
class PairRow:
    messages: list[Message]
    system: str
    response_a: str
    response_b: str
    model_a: str
    model_b: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_hash(self) -> str:
        return conversation_hash(self.messages, self.system)


@dataclass(frozen=True)
class ImportResult:
    campaign: Campaign
    campaign_created: bool
    rows: int
    imported: int
    already_present: int


def _parse_row(_where: str, record: dict[str, Any]) -> PairRow:
    for required in ("prompt", "response_a", "response_b"):
        if required not in record or record[required] is None:
            raise ValueError(f"field '{required}' is missing")
    messages, system = conversation_normalize(record["prompt"], record.get("system"))
    length_check(
        len(system) + sum(len(message["content"]) for message in messages),
        what="field 'prompt'" + (" (with 'system')" if system else ""),
        max_chars=settings.MAX_PROMPT_CHARS,
        limit_name="PREFSTUDIO_MAX_PROMPT_CHARS",
    )
    for side in ("response_a", "response_b"):
        value = record[side]
        if not isinstance(value, str):
            raise ValueError(f"field '{side}' must be a string, not {type(value).__name__}")
        if not value.strip():
            raise ValueError(f"field '{side}' is empty")
        length_check(
            len(value),
            what=f"field '{side}'",
            max_chars=settings.MAX_RESPONSE_CHARS,
            limit_name="PREFSTUDIO_MAX_RESPONSE_CHARS",
        )
    if record["response_a"] == record["response_b"]:
        raise ValueError("'response_a' and 'response_b' are the same text: a pair needs two different responses")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("field 'metadata' must be an object")
    metadata = {**{k: v for k, v in record.items() if k not in KNOWN_FIELDS}, **metadata}
    models = {"model_a": str(record.get("model_a") or ""), "model_b": str(record.get("model_b") or "")}
    listed = record.get("models")
    if not any(models.values()) and isinstance(listed, list) and len(listed) == 2:
        models = {"models[0]": str(listed[0]), "models[1]": str(listed[1])}
    for where, model in models.items():
        length_check(len(model), what=f"field '{where}'", max_chars=MODEL_NAME_MAX_CHARS)
    model_a, model_b = models.values()
    return PairRow(
        messages=messages,
        system=system,
        response_a=record["response_a"],
        response_b=record["response_b"],
        model_a=model_a,
        model_b=model_b,
        metadata=metadata,
    )


def pairs_read(stream: IO[bytes], *, name: str, file_format: str | None = None) -> list[PairRow]:
    """Parse and validate every row; raise one InputError that lists the bad rows (line and field)."""
    rows = records_parse(
        stream,
        name=name,
        file_format=file_format,
        parse=_parse_row,
        refusal="nothing was imported. Fix them and import again",
    )
    if not rows:
        raise InputError(f"{name} holds no rows: nothing to import.")
    return rows


def _existing_keys(campaign: Campaign) -> Counter[tuple[str, str, str]]:
    return Counter(
        Comparison.objects.filter(campaign=campaign).values_list(
            "prompt__content_hash", "candidate_a__text", "candidate_b__text"
        )
    )


def pairs_import(
    *, rows: list[PairRow], campaign_name: str, created_by: AbstractBaseUser | None = None
) -> ImportResult:
    """Write validated rows in one transaction, creating the campaign if needed.

    Importing a file again adds nothing: a row counts as present when the campaign already holds as many
    pairs with the same prompt and the same two responses (a file may hold the same pair twice, e.g. two
    experts' judgments of it, and both are kept).
    """
    with transaction.atomic():
        campaign, campaign_created = campaign_get_or_create(name=campaign_name, created_by=created_by)
        present = _existing_keys(campaign)
        fresh: list[PairRow] = []
        for row in rows:
            key = (row.prompt_hash, row.response_a, row.response_b)
            if present[key] > 0:
                present[key] -= 1
            else:
                fresh.append(row)
        prompts_by_hash = {
            prompt.content_hash: prompt
            for prompt in Prompt.objects.filter(
                campaign=campaign, content_hash__in={row.prompt_hash for row in fresh}
            ).order_by("id")
        }
        new_prompts = []
        for row in fresh:
            if row.prompt_hash not in prompts_by_hash:
                prompt = Prompt(
                    campaign=campaign, messages=row.messages, system=row.system, content_hash=row.prompt_hash
                )
                prompts_by_hash[row.prompt_hash] = prompt
                new_prompts.append(prompt)
        Prompt.objects.bulk_create(new_prompts, batch_size=500)
        candidates = []
        for row in fresh:
            prompt = prompts_by_hash[row.prompt_hash]
            for text, model in ((row.response_a, row.model_a), (row.response_b, row.model_b)):
                # Nothing tells how these responses were produced (chat template or raw text): say so.
                candidates.append(
                    Candidate(
                        prompt=prompt, text=text, model_name=model, backend="import", prompt_format=PromptFormat.UNKNOWN
                    )
                )
        Candidate.objects.bulk_create(candidates, batch_size=500)
        comparisons = [
            Comparison(
                prompt=prompts_by_hash[row.prompt_hash],
                candidate_a=candidates[2 * i],
                candidate_b=candidates[2 * i + 1],
                metadata=row.metadata,
            )
            for i, row in enumerate(fresh)
        ]
        Comparison.objects.bulk_create(comparisons, batch_size=500)
    return ImportResult(
        campaign=campaign,
        campaign_created=campaign_created,
        rows=len(rows),
        imported=len(fresh),
        already_present=len(rows) - len(fresh),
    )


def pairs_import_file(
    stream: IO[bytes],
    *,
    name: str,
    campaign_name: str,
    file_format: str | None = None,
    created_by: AbstractBaseUser | None = None,
) -> ImportResult:
    """Read, validate and import one file: all of it, or nothing when any row is bad."""
    rows = pairs_read(stream, name=name, file_format=file_format)
    return pairs_import(rows=rows, campaign_name=campaign_name, created_by=created_by)
