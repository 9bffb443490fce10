import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotator.models import Campaign, Candidate, Comparison, Prompt
from tests.factories import HUMAN_PREFERENCES

pytestmark = pytest.mark.django_db


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def run_import(path: Path, campaign: str = "Imported") -> str:
    out = io.StringIO()
    call_command("import_pairs", str(path), "--campaign", campaign, stdout=out)
    return out.getvalue()


GOOD = {"prompt": "What is 2+2?", "response_a": "4", "response_b": "Four, of course."}


def test_import_creates_campaign_prompts_candidates_and_comparisons(tmp_path):
    rows = [
        GOOD | {"source": "unit", "label": "a"},
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Tell me a joke"},
            ],
            "system": "Be funny.",
            "response_a": "Knock knock.",
            "response_b": "No.",
            "model_a": "m1",
            "model_b": "m2",
        },
    ]
    out = run_import(write_jsonl(tmp_path / "pairs.jsonl", rows))
    assert "Created campaign 'Imported'" in out and "2 pair(s) imported from 2 row(s)" in out
    first, second = Comparison.objects.order_by("id")
    assert first.metadata == {"source": "unit", "label": "a"}
    assert first.prompt.messages == [{"role": "user", "content": "What is 2+2?"}]
    assert (first.candidate_a.text, first.candidate_b.text) == ("4", "Four, of course.")
    assert second.prompt.system == "Be funny." and len(second.prompt.messages) == 3
    assert (second.candidate_a.model_name, second.candidate_b.model_name) == ("m1", "m2")
    assert Candidate.objects.filter(backend="import").count() == 4


def test_importing_the_same_file_twice_adds_nothing(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD])
    run_import(path)
    out = run_import(path)
    assert "Updated campaign 'Imported'" in out and "0 pair(s) imported from 1 row(s), 1 already present" in out
    assert Comparison.objects.count() == 1


def test_a_pair_repeated_in_a_file_is_kept_and_a_new_pair_for_a_known_prompt_reuses_it(tmp_path):
    run_import(write_jsonl(tmp_path / "first.jsonl", [GOOD, GOOD]))
    assert Comparison.objects.count() == 2 and Prompt.objects.count() == 1
    out = run_import(write_jsonl(tmp_path / "second.jsonl", [GOOD, GOOD, GOOD | {"response_b": "IV"}]))
    assert "1 pair(s) imported from 3 row(s), 2 already present" in out
    assert Comparison.objects.count() == 3 and Prompt.objects.count() == 1


def test_a_leading_system_message_in_the_prompt_list_is_kept_as_the_system_message(tmp_path):
    row = GOOD | {"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]}
    run_import(write_jsonl(tmp_path / "p.jsonl", [row]))
    prompt = Prompt.objects.get()
    assert prompt.system == "Be kind." and prompt.messages == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ('{"prompt": "x", "response_a": "a"', "line 2: not valid JSON"),
        ({"response_a": "a", "response_b": "b"}, "line 2: field 'prompt' is missing"),
        ({"prompt": "x", "response_a": "a"}, "line 2: field 'response_b' is missing"),
        ({"prompt": "x", "response_a": "", "response_b": "b"}, "line 2: field 'response_a' is empty"),
        ({"prompt": "x", "response_a": 3, "response_b": "b"}, "line 2: field 'response_a' must be a string, not int"),
        (
            {"prompt": "x", "response_a": "same", "response_b": "same"},
            "line 2: 'response_a' and 'response_b' are the same",
        ),
        (
            {"prompt": 7, "response_a": "a", "response_b": "b"},
            "line 2: 'prompt' must be a string or a list of messages",
        ),
        (
            {"prompt": [{"role": "robot", "content": "x"}], "response_a": "a", "response_b": "b"},
            "line 2: 'prompt'[0].role is 'robot'",
        ),
        (
            {
                "prompt": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
                "response_a": "a",
                "response_b": "b",
            },
            "line 2: 'prompt' must end with a user turn",
        ),
        ([1, 2], "line 2: must be a JSON object"),
        (
            {"prompt": "x", "response_a": "a", "response_b": "b", "metadata": [1]},
            "line 2: field 'metadata' must be an object",
        ),
    ],
)
def test_a_bad_row_names_line_and_field_and_nothing_is_imported(tmp_path, bad_row, message):
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD, bad_row, GOOD | {"prompt": "other"}])
    with pytest.raises(CommandError) as error:
        run_import(path)
    assert f"pairs.jsonl, {message}" in str(error.value)
    assert "nothing was imported" in str(error.value)
    assert Campaign.objects.count() == 0 and Comparison.objects.count() == 0


def test_all_bad_rows_are_listed_up_to_a_limit(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "x"}] * 25)
    with pytest.raises(CommandError, match=r"25 bad row\(s\)") as error:
        run_import(path)
    assert "and 5 more" in str(error.value)


def test_missing_file_empty_file_and_unknown_extension_are_clear_errors(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run_import(tmp_path / "nope.jsonl")
    with pytest.raises(CommandError, match="holds no rows"):
        run_import(write_jsonl(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(CommandError, match=r"Cannot tell the format of .*pairs\.csv"):
        run_import(write_jsonl(tmp_path / "pairs.csv", [GOOD]))
    (tmp_path / "latin1.jsonl").write_bytes('{"prompt": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8 text"):
        run_import(tmp_path / "latin1.jsonl")


def test_parquet_files_import_too(tmp_path):
    table = pa.Table.from_pylist(
        [GOOD, GOOD | {"prompt": [{"role": "user", "content": "Multi"}], "response_a": "x", "response_b": "y"}][:1]
    )
    pq.write_table(table, tmp_path / "pairs.parquet")
    assert "1 pair(s) imported" in run_import(tmp_path / "pairs.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(CommandError, match="not a readable Parquet file"):
        run_import(tmp_path / "bad.parquet", campaign="Other")


def test_parquet_bad_row_names_the_row(tmp_path):
    table = pa.Table.from_pylist([GOOD, GOOD | {"response_b": None}])
    pq.write_table(table, tmp_path / "pairs.parquet")
    with pytest.raises(CommandError, match=r"pairs.parquet, row 2: field 'response_b' is missing"):
        run_import(tmp_path / "pairs.parquet")


def test_the_real_human_preference_data_imports_as_is_and_is_shown(annotator_client):
    out = run_import(HUMAN_PREFERENCES, campaign="Human preferences")
    rows = [json.loads(line) for line in HUMAN_PREFERENCES.read_text().splitlines() if line.strip()]
    assert f"{len(rows)} pair(s) imported from {len(rows)} row(s)" in out
    assert Comparison.objects.count() == len(rows) == 725
    again = run_import(HUMAN_PREFERENCES, campaign="Human preferences")
    assert "0 pair(s) imported from 725 row(s), 725 already present" in again
    by_id = {c.metadata["id"]: c for c in Comparison.objects.select_related("prompt", "candidate_a", "candidate_b")}
    for row in rows:
        comparison = by_id[row["id"]]
        assert comparison.prompt.messages == row["prompt"]
        assert (comparison.candidate_a.text, comparison.candidate_b.text) == (row["response_a"], row["response_b"])
        assert comparison.metadata["label"] == row["label"]
    campaign = Campaign.objects.get(name="Human preferences")
    multi_turn = next(r for r in rows if r["multi_turn"])
    # Walk the annotation page until the multi-turn row shows up, judging as we go.
    for _ in range(len(rows)):
        page = annotator_client.get(reverse("annotator:annotate", args=[campaign.pk]))
        assert page.status_code == 200
        comparison = page.context["comparison"]
        if comparison.metadata["id"] == multi_turn["id"]:
            html = page.content.decode()
            assert html.count('class="turn user"') == multi_turn["num_user_turns"]
            break
        annotator_client.post(
            reverse("annotator:judge", args=[campaign.pk]), {"comparison": comparison.pk, "choice": "skip"}
        )
    else:
        pytest.fail("the multi-turn row was never shown")


def test_parquet_dates_and_decimals_are_kept_as_text_in_metadata(tmp_path):
    import datetime
    import decimal

    table = pa.Table.from_pylist(
        [GOOD | {"collected": datetime.datetime(2024, 5, 1, 12, 30), "score": decimal.Decimal("0.75")}]
    )
    pq.write_table(table, tmp_path / "pairs.parquet")
    run_import(tmp_path / "pairs.parquet")
    assert Comparison.objects.get().metadata == {"collected": "2024-05-01T12:30:00", "score": "0.75"}


def test_values_json_cannot_hold_are_bad_rows_naming_the_field(tmp_path):
    path = write_jsonl(
        tmp_path / "pairs.jsonl", ['{"prompt": "q", "response_a": "a", "response_b": "b", "rating": NaN}']
    )
    with pytest.raises(CommandError, match=r"line 1: field 'rating' is nan, which JSON cannot hold"):
        run_import(path)
    pq.write_table(pa.Table.from_pylist([GOOD | {"blob": b"\x00\x01"}]), tmp_path / "pairs.parquet")
    with pytest.raises(CommandError, match=r"row 1: field 'blob' holds binary data"):
        run_import(tmp_path / "pairs.parquet")


def _nothing_written() -> bool:
    return not (Campaign.objects.exists() or Prompt.objects.exists() or Candidate.objects.exists())


def assert_refused(path: Path, *messages: str, campaign: str = "Imported") -> str:
    with pytest.raises(CommandError) as error:
        run_import(path, campaign=campaign)
    for message in messages:
        assert message in str(error.value)
    assert _nothing_written()
    return str(error.value)


def test_a_row_nested_900_levels_deep_names_line_and_field(tmp_path):
    deep = "[" * 900 + "]" * 900
    path = write_jsonl(
        tmp_path / "pairs.jsonl", [GOOD, '{"prompt": "q", "response_a": "a", "response_b": "b", "x": ' + deep + "}"]
    )
    assert_refused(path, "pairs.jsonl, line 2: field 'x' is nested more than 64 levels deep: flatten it")
    path = write_jsonl(tmp_path / "deeper.jsonl", [GOOD, "[" * 100_000 + "]" * 100_000])
    assert_refused(path, "deeper.jsonl, line 2: not valid JSON (nested more than 64 levels deep)")


def test_a_number_python_cannot_read_is_a_bad_line(tmp_path):
    path = write_jsonl(
        tmp_path / "pairs.jsonl", ['{"prompt": "q", "response_a": "a", "response_b": "b", "n": ' + "9" * 5000 + "}"]
    )
    assert_refused(path, "pairs.jsonl, line 1: not valid JSON (Exceeds the limit (4300 digits)")


def test_a_model_name_longer_than_its_column_names_row_and_field(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD | {"model_a": "m" * 5000}])
    assert_refused(path, "pairs.jsonl, line 1: field 'model_a' is 5,000 characters long, over the limit of 500")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (GOOD | {"response_a": "fo\x00ur"}, "field 'response_a' holds a NUL character (at character 3)"),
        (GOOD | {"prompt": [{"role": "user", "content": "\x00"}]}, "field 'prompt[0].content' holds a NUL character"),
        (GOOD | {"system": "Be\x00"}, "field 'system' holds a NUL character (at character 3)"),
        (GOOD | {"metadata": {"note": ["ok", "\x00"]}}, "field 'metadata.note[1]' holds a NUL character"),
        (GOOD | {"no\x00te": 1}, "the name of field 'no\\x00te' holds a NUL character"),
        (GOOD | {"model_b": "m\x00"}, "field 'model_b' holds a NUL character"),
        (GOOD | {"response_b": "half \ud83d"}, "field 'response_b' holds a lone surrogate (U+D83D at character 6)"),
    ],
)
def test_nul_characters_and_lone_surrogates_name_line_and_field(tmp_path, row, message):
    assert_refused(write_jsonl(tmp_path / "pairs.jsonl", [row]), f"pairs.jsonl, line 1: {message}")


def test_responses_prompts_and_rows_over_their_limits_are_refused(tmp_path, settings):
    settings.MAX_RESPONSE_CHARS, settings.MAX_PROMPT_CHARS, settings.MAX_IMPORT_ROWS = 20, 20, 3
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD | {"response_b": "b" * 21}])
    assert_refused(
        path, "line 1: field 'response_b' is 21 characters long, over the limit of 20 (PREFSTUDIO_MAX_RESPONSE_CHARS)"
    )
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD | {"prompt": "q" * 15, "system": "s" * 6}])
    assert_refused(
        path,
        "line 1: field 'prompt' (with 'system') is 21 characters long, over the limit of 20 "
        "(PREFSTUDIO_MAX_PROMPT_CHARS)",
    )
    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD | {"prompt": f"q{i}"} for i in range(4)])
    assert_refused(path, "pairs.jsonl holds more than 3 rows, the most one import takes (PREFSTUDIO_MAX_IMPORT_ROWS)")
    write_jsonl(path, [GOOD | {"prompt": f"q{i}"} for i in range(3)])
    assert "3 pair(s) imported" in run_import(path)


def test_a_campaign_name_longer_than_its_column_is_refused(tmp_path):
    assert_refused(
        write_jsonl(tmp_path / "pairs.jsonl", [GOOD]),
        "The campaign name is 201 characters long: keep it to 200.",
        campaign="c" * 201,
    )


def _corrupt_page_header(path: Path, *, row_group: int, column: int) -> None:
    data = bytearray(path.read_bytes())
    offset = pq.ParquetFile(path).metadata.row_group(row_group).column(column).data_page_offset
    data[offset : offset + 30] = bytes(b ^ 0x5A for b in data[offset : offset + 30])
    path.write_bytes(bytes(data))


def test_a_parquet_file_with_a_corrupt_data_page_names_row_group_and_column(tmp_path):
    rows = [GOOD | {"response_b": f"Four, said row {i}."} for i in range(30)]
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=10, use_dictionary=False)
    _corrupt_page_header(path, row_group=1, column=2)
    message = assert_refused(path, "pairs.parquet, row group 2 (rows 11-20), column 'response_b': cannot be read (")
    assert message.endswith("): write the file again.")


def test_a_parquet_column_name_that_is_not_utf8_is_refused_not_a_crash(tmp_path):
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD | {"zzzznote": "x"}]), path)
    data = path.read_bytes()
    assert data.count(b"zzzznote") == 2  # the footer's schema and its column chunk's path
    path.write_bytes(data.replace(b"zzzznote", b"\xff\xfezznote"))
    assert_refused(path, "pairs.parquet: a column name in its schema is not UTF-8 text: write the file again.")


def test_a_parquet_uuid_column_names_row_and_field(tmp_path):
    import uuid

    table = pa.Table.from_pylist([GOOD]).append_column("id", pa.array([uuid.uuid4().bytes], type=pa.uuid()))
    pq.write_table(table, tmp_path / "pairs.parquet")
    assert_refused(
        tmp_path / "pairs.parquet",
        "pairs.parquet, row 1: field 'id' holds a UUID, which cannot be kept as JSON: cast the column to a string",
    )


def test_parquet_values_python_cannot_hold_name_row_group_and_column(tmp_path):
    import struct

    offsets, data = pa.py_buffer(struct.pack("<ii", 0, 2)), pa.py_buffer(b"\xc2(")
    not_utf8 = pa.Array.from_buffers(pa.string(), 1, [None, offsets, data])  # Arrow checks nothing here
    table = pa.table({"prompt": ["q"], "response_a": not_utf8, "response_b": ["b"]})
    pq.write_table(table, tmp_path / "pairs.parquet")
    assert_refused(
        tmp_path / "pairs.parquet",
        "pairs.parquet, row group 1 (rows 1-1), column 'response_a': cannot be read ('utf-8' codec can't decode",
    )
    table = pa.Table.from_pylist([GOOD]).append_column("day", pa.array([2**31 - 1], type=pa.date32()))
    pq.write_table(table, tmp_path / "pairs.parquet")
    assert_refused(tmp_path / "pairs.parquet", "row group 1 (rows 1-1), column 'day': cannot be read (days=2147483647")
