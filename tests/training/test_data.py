import pyarrow as pa
import pytest

from core.checksums import file_sha256
from core.errors import InputError
from core.models import JobStatus
from exports.models import DatasetExport
from tests.factories import TINY_MODEL, make_campaign
from tests.training.helpers import CHAT, ROW, write
from training.data import data_format_check, length_report, preference_data_load, preference_file_check


def refusal(path) -> str:
    with pytest.raises(InputError) as error:
        preference_file_check(path, split="train")
    return error.value.message


def test_string_file_with_provenance_columns_passes_with_its_checksum(tmp_path):
    path = write(tmp_path / "train.parquet", [{**ROW, "comparison_id": 1, "annotators": 3}] * 3)
    checked = preference_file_check(path, split="train")
    assert (checked.rows, checked.format, checked.sha256) == (3, "string", file_sha256(path))


def test_conversational_file_passes_as_conversational(tmp_path):
    assert preference_file_check(write(tmp_path / "t.parquet", [CHAT] * 2), split="train").format == "conversational"


def test_missing_columns_are_named_with_the_file(tmp_path):
    path = write(tmp_path / "train.parquet", [{"prompt": "p", "response_a": "a", "response_b": "b"}])
    message = refusal(path)
    assert f"{path}: missing column(s) chosen, rejected" in message
    assert "it has prompt, response_a, response_b" in message


def test_empty_file_is_refused(tmp_path):
    schema = pa.schema([("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())])
    path = write(tmp_path / "train.parquet", [], schema=schema)
    assert f"{path} holds no rows: there is nothing to train on" in refusal(path)


def test_rows_where_chosen_equals_rejected_are_listed_by_number(tmp_path):
    same = {**ROW, "rejected": ROW["chosen"]}
    path = write(tmp_path / "train.parquet", [ROW, same, ROW, same])
    message = refusal(path)
    assert f"{path} (train): 2 problem(s)" in message
    assert "chosen == rejected (a pair that teaches nothing: drop it): 2 rows: 2, 4" in message


def test_message_prompt_with_string_responses_is_a_type_mismatch_naming_the_row(tmp_path):
    row = {"prompt": [{"role": "user", "content": "Hi?"}], "chosen": "Hello!", "rejected": "Bye."}
    message = refusal(write(tmp_path / "train.parquet", [row]))
    assert "prompt/response types don't match (prompt messages, chosen a string, rejected a string)" in message
    assert ": row 1" in message


def test_null_values_and_non_assistant_responses_are_reported(tmp_path):
    user_reply = {**CHAT, "chosen": [{"role": "user", "content": "Hello!"}]}
    nulls = write(tmp_path / "a.parquet", [ROW, {**ROW, "chosen": None}])
    assert "chosen is null: row 2" in refusal(nulls)
    assert "chosen is not one assistant message" in refusal(write(tmp_path / "b.parquet", [CHAT, user_reply]))


def test_more_than_ten_bad_rows_are_summarised(tmp_path):
    same = {**ROW, "rejected": ROW["chosen"]}
    message = refusal(write(tmp_path / "train.parquet", [same] * 13))
    assert "13 rows: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 3 more" in message


def test_not_a_parquet_file_is_refused(tmp_path):
    path = tmp_path / "train.parquet"
    path.write_text("prompt,chosen,rejected\n")
    assert "not a readable Parquet file" in refusal(path)


def test_export_directory_uses_its_validation_file_when_there_is_one(tmp_path):
    write(tmp_path / "train.parquet", [ROW] * 4)
    assert preference_data_load(str(tmp_path)).validation is None
    write(tmp_path / "validation.parquet", [ROW])
    data = preference_data_load(str(tmp_path))
    assert (data.train.rows, data.validation.rows) == (4, 1)


def test_directory_without_train_file_and_missing_paths_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"holds no train\.parquet"):
        preference_data_load(str(tmp_path))
    with pytest.raises(InputError, match="no such file, directory or export id"):
        preference_data_load(str(tmp_path / "nowhere"))
    (tmp_path / "data.jsonl").write_text("{}")
    with pytest.raises(InputError, match=r"is not a \.parquet file"):
        preference_data_load(str(tmp_path / "data.jsonl"))


def test_train_and_validation_in_different_formats_are_refused(tmp_path):
    write(tmp_path / "train.parquet", [ROW])
    write(tmp_path / "validation.parquet", [CHAT])
    with pytest.raises(InputError, match=r"is string but .* is conversational: both splits must use the same format"):
        preference_data_load(str(tmp_path))


def make_export(tmp_path, **fields) -> DatasetExport:
    train = write(tmp_path / "train.parquet", [ROW] * 2)
    files = {"train": {"path": str(train), "rows": 2, "sha256": file_sha256(train), "bytes": train.stat().st_size}}
    values = {"status": JobStatus.SUCCEEDED, "out_dir": str(tmp_path), "files": files, **fields}
    return DatasetExport.objects.create(campaign=make_campaign("C", pairs=0), **values)


@pytest.mark.django_db
def test_export_id_resolves_to_its_files(tmp_path):
    export = make_export(tmp_path)
    data = preference_data_load(str(export.pk))
    assert (data.export_id, data.train.path, data.validation) == (export.pk, tmp_path / "train.parquet", None)


@pytest.mark.django_db
def test_export_whose_file_changed_since_the_export_is_refused(tmp_path):
    export = make_export(tmp_path)
    write(tmp_path / "train.parquet", [ROW] * 3)
    with pytest.raises(InputError, match=f"Export {export.pk}: .* has changed since the export"):
        preference_data_load(str(export.pk))


@pytest.mark.django_db
def test_export_whose_file_is_gone_is_refused_naming_it(tmp_path):
    export = make_export(tmp_path)
    (tmp_path / "train.parquet").unlink()
    with pytest.raises(InputError, match=rf"Export {export.pk}: its train file \(.*train\.parquet\) is missing"):
        preference_data_load(str(export.pk))


@pytest.mark.django_db
def test_unknown_or_unfinished_export_is_refused(tmp_path):
    export = make_export(tmp_path, status=JobStatus.RUNNING)
    with pytest.raises(InputError, match=f"Export {export.pk} is running, not succeeded"):
        preference_data_load(str(export.pk))
    with pytest.raises(InputError, match="there is no export with id 9999"):
        preference_data_load("9999")


def test_length_report_counts_rows_trl_would_drop_or_truncate():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL)
    long_prompt = {**ROW, "prompt": "Once upon a time " * 20}
    long_answer = {**ROW, "chosen": " and then" * 20}
    report = length_report([ROW, long_prompt, long_answer, long_prompt], tokenizer, max_length=30)
    assert (report.dropped, report.truncated) == ([2, 4], [3])
    assert "2 row(s) dropped, their prompt alone fills max_length=30 tokens (2 rows: 2, 4)" in " ".join(
        report.describe("train.parquet", 30)
    )


def check_against(tokenizer_dir, path, **options) -> None:
    from transformers import AutoTokenizer

    data = preference_data_load(str(path))
    data_format_check(data, AutoTokenizer.from_pretrained(tokenizer_dir), model=str(tokenizer_dir), **options)


def test_string_rows_for_a_model_with_a_chat_template_are_refused_saying_how_to_fix_it(tmp_path, chat_model):
    path = write(tmp_path / "export" / "train.parquet", [ROW] * 2)
    with pytest.raises(InputError) as error:
        check_against(chat_model, tmp_path / "export")
    assert error.value.message == (
        f"{path} holds plain-string rows (prompt, chosen and rejected as text) but {chat_model}'s tokenizer has a "
        "chat template: DPO would train the model on prompt + response + EOS with no chat template around them, "
        "text it never produces when it chats. Export the campaign in the conversational format "
        "(export_preferences --format conversational; --format auto does so when the responses were sampled "
        "through the chat template), or, if these strings are what this model should learn (raw completions it "
        "sampled without its template), pass --allow-string-rows-with-chat-template "
        "(allow_string_rows_with_chat_template: true in a config file)."
    )
    check_against(chat_model, tmp_path / "export", allow_string_rows=True)  # asked for explicitly: fine
    check_against(TINY_MODEL, tmp_path / "export")  # no chat template: strings are what it reads


def test_conversational_rows_for_a_model_without_a_chat_template_are_refused(tmp_path, chat_model):
    path = write(tmp_path / "export" / "train.parquet", [CHAT] * 2)
    with pytest.raises(InputError) as error:
        check_against(TINY_MODEL, tmp_path / "export", allow_string_rows=True)
    assert error.value.message == (
        f"{path} is conversational (lists of messages) but {TINY_MODEL}'s tokenizer has no chat template to render "
        "them: use a chat model, or export the campaign in the string format (export_preferences --format string; "
        "--format auto does so when the responses were sampled as raw text completions)."
    )
    check_against(chat_model, tmp_path / "export")
