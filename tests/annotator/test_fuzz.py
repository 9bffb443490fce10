"""Property-based fuzzing (Hypothesis) of the judgment API and the pair import.

Random and hostile input (wrong types, huge numbers, NUL characters and lone surrogates, deep nesting, broken
bodies and files) never gets a 500, and a refusal writes nothing. Each example runs in a savepoint rolled back
after it, so every example meets the same database. More examples: HYPOTHESIS_PROFILE=fuzz (tests/conftest.py).
"""

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.db import transaction
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from annotator.models import DURATION_MS_MAX, Assignment, Campaign, Candidate, Choice, Comparison, Judgment, Prompt
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db

TABLES = (Campaign, Prompt, Candidate, Comparison, Judgment, Assignment)


def table_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in TABLES}


@contextmanager
def rolled_back() -> Iterator[None]:
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


# Text as hostile as JSON can carry: any code point (lone surrogates and NUL included), the words the API
# knows, and the lengths near its limits.
any_char = st.characters(exclude_categories=())
texts = st.one_of(
    st.text(any_char, max_size=20),
    st.sampled_from([*Choice.values, "", " ", "\x00", "\ud800", "a\x00b", "x" * 5001, "m" * 501]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, DURATION_MS_MAX, DURATION_MS_MAX + 1, 2**31, 2**40, 2**63, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------------------------------------------------
# The judgment API


judgment_bodies = st.fixed_dictionaries(
    {},
    optional={
        "choice": st.sampled_from(Choice.values) | json_values,
        "rationale": texts | json_values,
        "duration_ms": numbers | json_values,
        "extra": json_values,
    },
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=fuzz",
        "multipart/form-data",
        "text/plain",
    ]
)


@st.composite
def judgment_requests(draw: st.DrawFn) -> tuple[bytes, str]:
    """(body, content type): JSON, a form, JSON nested deep, or any bytes, sent as any content type."""
    kind = draw(st.sampled_from(["json", "form", "nested", "bytes"]))
    if kind == "json":
        return json.dumps(draw(judgment_bodies | json_values)).encode(), "application/json"
    if kind == "form":
        fields = draw(st.dictionaries(st.sampled_from(["choice", "rationale", "duration_ms"]), texts, max_size=3))
        raw = {name: value.encode("utf-8", "surrogatepass") for name, value in fields.items()}  # bytes as sent
        return urlencode(raw).encode(), "application/x-www-form-urlencoded"
    if kind == "nested":
        body = '{"choice": "left", "duration_ms": ' + nested(draw(st.integers(1, 20_000))) + "}"
        return body.encode(), draw(content_types)
    return draw(st.binary(max_size=200)), draw(content_types)


@pytest.fixture
def handed_pair(db) -> tuple[APIClient, int]:
    """An annotator's client and the pair the API handed them."""
    client = APIClient()
    client.force_authenticate(make_user("fuzzer"))
    campaign = make_campaign("Fuzz", pairs=2)
    pair = client.get(reverse("api-campaign-next", args=[campaign.pk])).json()
    return client, pair["id"]


@given(sent=judgment_requests(), other_pk=st.none() | st.integers(min_value=0, max_value=2**70))
def test_the_judgment_api_never_fails_on_bad_input_and_a_refusal_records_nothing(handed_pair, sent, other_pk):
    client, pair_id = handed_pair
    body, content_type = sent
    pk = pair_id if other_pk is None else other_pk
    with rolled_back():
        before = table_counts()
        response = client.generic("POST", reverse("api-judgment-create", args=[pk]), body, content_type=content_type)
        assert response.status_code < 500
        after = table_counts()
        if response.status_code >= 400:
            assert after == before, response.content
            assert response.json(), "a refusal says why"
        else:
            assert response.status_code == 201 and pk == pair_id
            # One judgment, and the lease it ends.
            assert after == before | {"Judgment": before["Judgment"] + 1, "Assignment": before["Assignment"] - 1}
            judgment = Judgment.objects.get()
            assert judgment.duration_ms is None or 0 <= judgment.duration_ms <= DURATION_MS_MAX
            assert "\x00" not in judgment.rationale


# ---------------------------------------------------------------------------------------------------------
# The pair import


messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]) | texts, "content": texts}),
    max_size=3,
)
plain_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
rows = st.fixed_dictionaries(
    {},
    optional={
        "prompt": plain_text | texts | messages | json_values,
        "response_a": plain_text | texts | json_values,
        "response_b": plain_text | texts | json_values,
        "system": texts | st.none(),
        "model_a": texts | json_values,
        "model_b": texts,
        "metadata": st.dictionaries(texts, json_values, max_size=3) | json_values,
        "extra": json_values,
    },
)
sound_rows = st.builds(
    lambda prompt, a, b: {"prompt": prompt, "response_a": a, "response_b": "B: " + b},
    plain_text.filter(str.strip),
    plain_text.filter(str.strip),
    plain_text,
)


def _parquet(records: list[dict[str, Any]]) -> bytes | None:
    """The rows as Parquet, when Arrow can type their columns."""
    try:
        table = pa.Table.from_pylist(records)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=2)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        return None
    return buffer.getvalue()


@st.composite
def import_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """(content, file name): JSONL or Parquet of sound and hostile rows, damaged or not, or any bytes."""
    records = draw(st.lists(sound_rows | rows, min_size=1, max_size=5))
    kind = draw(st.sampled_from(["jsonl", "jsonl", "parquet", "bytes"]))
    if kind == "parquet" and (content := _parquet(records)) is not None:
        if draw(st.booleans()):  # damage it: flip some bytes
            damaged = bytearray(content)
            for index in draw(st.lists(st.integers(0, len(content) - 1), min_size=1, max_size=8)):
                damaged[index] ^= draw(st.integers(1, 255))
            content = bytes(damaged)
        return content, "pairs.parquet"
    if kind == "bytes":
        return draw(st.binary(max_size=300)), draw(st.sampled_from(["pairs.jsonl", "pairs.parquet", "pairs.csv"]))
    lines = [json.dumps(record) for record in records]
    extra = draw(st.sampled_from(["", "not json", "[1, 2]", nested(900), nested(20_000), "9" * 5000]))
    return "\n".join([*lines, extra]).encode("utf-8", "surrogatepass"), "pairs.jsonl"


@pytest.fixture
def staff_client(db) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("fuzz-boss", staff=True))
    return client


@given(
    upload=import_files(),
    campaign=st.sampled_from(["Fuzzed", ""]) | texts,
    file_format=st.sampled_from([None, "jsonl", "parquet", "csv"]),
)
def test_the_import_never_fails_on_bad_input_and_a_refusal_writes_nothing(staff_client, upload, campaign, file_format):
    content, name = upload
    file = io.BytesIO(content)
    file.name = name
    # The name as a client sends it, in bytes (Django's test client would refuse to encode a lone surrogate).
    data = {"file": file, "campaign": [campaign.encode("utf-8", "surrogatepass")]}
    data |= {"format": file_format} if file_format else {}
    with rolled_back():
        before = table_counts()
        response = staff_client.post(reverse("api-pairs-import"), data, format="multipart")
        assert response.status_code < 500
        after = table_counts()
        if response.status_code >= 400:
            assert after == before, response.content
            assert response.json(), "a refusal says why"
        else:
            assert response.status_code == 201
            result = response.json()
            assert after["Comparison"] - before["Comparison"] == result["imported"] == result["rows"]
            assert after["Candidate"] - before["Candidate"] == 2 * result["imported"]
