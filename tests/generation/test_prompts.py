import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.conversations import conversation_hash
from core.errors import InputError
from generation.prompts import prompts_read, prompts_read_path


def read_lines(*lines: str, name: str = "prompts.jsonl"):
    return prompts_read(io.BytesIO("\n".join(lines).encode()), name=name)


def test_string_prompt_becomes_one_user_message_and_extra_fields_become_metadata():
    result = read_lines(json.dumps({"prompt": "Once upon a time", "topic": "cats", "metadata": {"source": "x"}}))
    [row] = result.rows
    assert row.messages == [{"role": "user", "content": "Once upon a time"}]
    assert row.system == ""
    assert row.metadata == {"topic": "cats", "source": "x"}
    assert row.where == "prompts.jsonl, line 1"


def test_message_list_with_system_keeps_the_conversation_and_hashes_like_the_annotator():
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a story"},
    ]
    [row] = read_lines(json.dumps({"prompt": messages, "system": "Be kind."})).rows
    assert row.messages == messages
    assert row.system == "Be kind."
    assert row.content_hash == conversation_hash(messages, "Be kind.")


def test_repeated_prompts_are_kept_once_and_counted():
    result = read_lines(
        json.dumps({"prompt": "A"}), json.dumps({"prompt": "B"}), "", json.dumps({"prompt": "A", "x": 1})
    )
    assert [row.messages[0]["content"] for row in result.rows] == ["A", "B"]
    assert result.repeated == 1


def test_every_bad_row_is_named_with_its_line_and_field():
    with pytest.raises(InputError) as caught:
        read_lines(
            json.dumps({"prompt": "fine"}),
            json.dumps({"text": "no prompt field"}),
            "{not json",
            json.dumps({"prompt": [{"role": "assistant", "content": "ends with the model"}]}),
            json.dumps({"prompt": "ok", "metadata": [1, 2]}),
        )
    message = caught.value.message
    assert "4 bad row(s) in prompts.jsonl; nothing was generated" in message
    assert "prompts.jsonl, line 2: field 'prompt' is missing" in message
    assert "prompts.jsonl, line 3: not valid JSON" in message
    assert "prompts.jsonl, line 4: 'prompt' must end with a user turn" in message
    assert "prompts.jsonl, line 5: field 'metadata' must be an object" in message


def test_empty_file_is_refused():
    with pytest.raises(InputError, match="holds no prompts"):
        read_lines("", "")


def test_parquet_rows_are_read_with_their_row_numbers(tmp_path):
    path = tmp_path / "prompts.parquet"
    pq.write_table(pa.table({"prompt": ["Once upon a time", ""], "id": [1, 2]}), path)
    with pytest.raises(InputError, match=r"prompts.parquet, row 2: 'prompt' is an empty string"):
        prompts_read_path(path)
    pq.write_table(pa.table({"prompt": ["Once upon a time"], "id": [7]}), path)
    [row] = prompts_read_path(path).rows
    assert row.metadata == {"id": 7}


def test_missing_file_and_unknown_extension_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match=r"nope.jsonl: no such file"):
        prompts_read_path(tmp_path / "nope.jsonl")
    csv = tmp_path / "prompts.csv"
    csv.write_text("prompt\nhello\n")
    with pytest.raises(InputError, match=r"Cannot tell the format .* use .jsonl or .parquet"):
        prompts_read_path(csv)


def test_parquet_prompt_columns_json_cannot_hold_are_refused_before_any_generation(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from generation.prompts import prompts_read_path

    pq.write_table(pa.Table.from_pylist([{"prompt": "Once", "raw": b"\x00"}]), tmp_path / "p.parquet")
    with pytest.raises(InputError, match=r"p.parquet, row 1: field 'raw' holds binary data"):
        prompts_read_path(tmp_path / "p.parquet")
