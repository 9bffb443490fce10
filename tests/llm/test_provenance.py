import hashlib

import pytest

from core.errors import InputError
from llm import provenance
from llm.provenance import model_check, model_is_local, model_revision_of
from tests.factories import TINY_MODEL


def fake_model(folder, weights: bytes = b"weights"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_paths_are_told_apart_from_hub_ids(tmp_path):
    assert model_is_local(str(tmp_path))
    assert model_is_local("./not/yet")
    assert model_is_local("../shared/models/x")
    assert not model_is_local("meta-llama/Llama-3.2-1B")


def test_missing_model_folder_is_a_clear_error():
    with pytest.raises(InputError, match=r"--model-b ./missing: no such folder"):
        model_check("./missing", what="--model-b")
    with pytest.raises(InputError, match="--model is empty"):
        model_check("  ")


def test_an_explicit_revision_wins():
    assert model_revision_of(str(TINY_MODEL), "v1.2") == "v1.2"


def test_a_local_folder_is_fingerprinted_by_its_config_and_weights(tmp_path):
    one = model_revision_of(str(fake_model(tmp_path / "one")))
    assert one.startswith("sha256:")
    assert model_revision_of(str(fake_model(tmp_path / "same"))) == one
    assert model_revision_of(str(fake_model(tmp_path / "other", b"weights2"))) != one
    expected = hashlib.sha256(b'{"model_type": "llama"}')
    expected.update(b"model.safetensors\x007\x00weights")
    assert one == "sha256:" + expected.hexdigest()


def test_huge_checkpoints_are_fingerprinted_by_file_sizes_not_contents(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "FULL_HASH_LIMIT", 3)
    assert model_revision_of(str(fake_model(tmp_path / "big"))).startswith("size-sha256:")


def test_a_hugging_face_cache_snapshot_gives_its_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = fake_model(tmp_path / "models--org--name" / "snapshots" / commit)
    assert model_revision_of(str(folder)) == commit
