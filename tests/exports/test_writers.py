import os
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.checksums import file_sha256
from core.errors import ConflictError, InputError
from exports.writers import MARKER_FILE, AtomicFileSet, JsonlSplitWriter, ParquetSplitWriter, parquet_schema

ROW = {
    "prompt": "Q?\n\n",
    "chosen": "yes",
    "rejected": "no",
    "comparison_id": 1,
    "prompt_id": 2,
    "prompt_hash": "h",
    "chosen_side": "a",
    "chosen_candidate_id": 3,
    "rejected_candidate_id": 4,
    "chosen_model": "m",
    "rejected_model": "m",
    "chosen_sampling_params": "{}",
    "rejected_sampling_params": "{}",
    "chosen_seed": None,
    "rejected_seed": 5,
    "chosen_edited_from": None,
    "rejected_edited_from": None,
    "votes": 1,
    "agreement": 1.0,
    "judge_source": "human",
    "annotator_ids": [9],
    "annotator_votes": ["chosen"],
    "judged_at": [datetime(2026, 1, 1, tzinfo=UTC)],
    "ranking_ids": [None],
    "strength": [""],
    "margin": 1.0,
    "pair_created_at": datetime(2026, 1, 1, tzinfo=UTC),
}


def listing(directory) -> list[str]:
    """The files an export left, but its marker file."""
    return sorted(name for name in os.listdir(directory) if name != MARKER_FILE)


def test_files_appear_under_their_final_names_only_on_commit(tmp_path):
    with AtomicFileSet(tmp_path) as files:
        writer = JsonlSplitWriter(files, "train.jsonl")
        writer.write([{"a": 1}, {"b": "é"}])
        writer.close()
        assert listing(tmp_path)[0].startswith(".train.jsonl.tmp-")
        assert not (tmp_path / "train.jsonl").exists()
        files.commit()
    assert listing(tmp_path) == ["train.jsonl"]
    assert (tmp_path / "train.jsonl").read_text() == '{"a": 1}\n{"b": "é"}\n'


def test_an_exception_before_commit_removes_every_temporary_file(tmp_path):
    with pytest.raises(RuntimeError), AtomicFileSet(tmp_path) as files:
        JsonlSplitWriter(files, "train.jsonl").write([{"a": 1}])
        files.temporary("README.md").write_text("card")
        raise RuntimeError("crash")
    assert listing(tmp_path) == []


def test_commit_removes_files_of_an_earlier_export_it_does_not_replace(tmp_path):
    (tmp_path / MARKER_FILE).write_text("an earlier export")
    (tmp_path / "validation.parquet").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    with AtomicFileSet(tmp_path) as files:
        files.temporary("train.parquet").write_text("new")
        files.commit()
    assert listing(tmp_path) == ["notes.txt", "train.parquet"]


def test_a_directory_with_files_no_export_wrote_is_refused_and_left_alone(tmp_path):
    (tmp_path / "README.md").write_text("my project")
    (tmp_path / "train.jsonl").write_text("my data")
    with pytest.raises(InputError, match=r"already holds files that no export wrote \(README.md, train.jsonl\)"):
        AtomicFileSet(tmp_path).__enter__()
    assert (tmp_path / "README.md").read_text() == "my project"
    assert (tmp_path / "train.jsonl").read_text() == "my data"


def test_a_committed_export_marks_its_directory_so_the_next_export_may_replace_its_files(tmp_path):
    with AtomicFileSet(tmp_path) as files:
        files.temporary("train.parquet").write_text("first")
        files.commit()
    assert (tmp_path / MARKER_FILE).exists()
    with AtomicFileSet(tmp_path) as files:
        files.temporary("train.parquet").write_text("second")
        files.commit()
    assert (tmp_path / "train.parquet").read_text() == "second"


def test_an_unwritable_output_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(InputError, match=r"Cannot write an export to .*file/out: Not a directory\. Choose a writable"):
        AtomicFileSet(tmp_path / "file" / "out").__enter__()


def test_a_second_export_into_the_same_directory_is_refused_while_one_runs(tmp_path):
    with AtomicFileSet(tmp_path), pytest.raises(ConflictError, match="Another export is writing to"):
        AtomicFileSet(tmp_path).__enter__()


def test_temporary_files_left_by_a_killed_export_are_swept_by_the_next(tmp_path):
    (tmp_path / ".train.parquet.tmp-abc123").write_text("half a file")
    with AtomicFileSet(tmp_path) as files:
        files.temporary("train.parquet").write_text("whole")
        files.commit()
    assert listing(tmp_path) == ["train.parquet"]


def test_parquet_writer_streams_row_groups_with_one_schema_and_writes_nothing_for_an_empty_split(tmp_path, monkeypatch):
    monkeypatch.setattr("exports.writers.FLUSH_ROWS", 2)
    schema = parquet_schema(conversational=False)
    with AtomicFileSet(tmp_path) as files:
        train = ParquetSplitWriter(files, "train.parquet", schema)
        empty = ParquetSplitWriter(files, "validation.parquet", schema)
        for ids in ([0], [1, 2], [], [3], [4]):  # batches as the pipeline hands them over, some empty
            train.write(pa.Table.from_pylist([{**ROW, "comparison_id": i} for i in ids], schema=schema))
        empty.write(pa.Table.from_pylist([], schema=schema))
        train.close()
        empty.close()
        files.commit()
    assert listing(tmp_path) == ["train.parquet"]
    parquet = pq.ParquetFile(tmp_path / "train.parquet")
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)] == [3, 2]
    assert parquet.schema_arrow == schema
    assert parquet.read().column("comparison_id").to_pylist() == [0, 1, 2, 3, 4]
    assert len(file_sha256(tmp_path / "train.parquet")) == 64
