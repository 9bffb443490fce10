"""Which model produced a candidate: a name that finds it again and a revision that pins its weights.

The revision is, in order of preference: the revision the user asked for (`--revision`, e.g. a Hugging Face
commit or tag); for a local folder that is a Hugging Face cache snapshot, the commit in its path; for any
other local folder, `sha256:` over its config and weight files; when the weights add up to more than
`FULL_HASH_LIMIT`, `size-sha256:` over the config and the weights' names and sizes only, so a 100 GB
checkpoint is not read through at every run; for a hub id, the commit that `transformers` resolves
(`config._commit_hash`), or nothing when it cannot tell.
"""

import hashlib
import re
from pathlib import Path

from core.errors import InputError

FULL_HASH_LIMIT = 2 << 30  # bytes
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
SNAPSHOT = re.compile(r"/snapshots/([0-9a-f]{40})(/|$)")


def model_is_local(model: str) -> bool:
    """A path rather than a hub id: it exists on disk, or it is written like a path (/, ./, ../, ~)."""
    return Path(model).expanduser().exists() or model.startswith(("/", "./", "../", "~"))


def model_check(model: str, *, what: str = "--model") -> None:
    """Refuse a local model folder that does not exist or is not a Hugging Face model folder."""
    if not model.strip():
        raise InputError(f"{what} is empty: give a model folder or a Hugging Face model id.")
    if not model_is_local(model):
        return
    path = Path(model).expanduser()
    if not path.exists():
        raise InputError(f"{what} {model}: no such folder. Give the folder of a Hugging Face model or a hub id.")
    if not (path / "config.json").is_file():
        raise InputError(f"{what} {model}: no config.json in it, so it is not a Hugging Face model folder.")


def _folder_digest(config: Path, weights: list[Path], *, contents: bool) -> str:
    digest = hashlib.sha256(config.read_bytes())
    for file in weights:
        digest.update(file.name.encode() + b"\0" + str(file.stat().st_size).encode() + b"\0")
        if contents:
            with file.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def model_revision_of(model: str, revision: str = "") -> str:
    if revision:
        return revision
    if model_is_local(model):
        path = Path(model).expanduser().resolve()
        if match := SNAPSHOT.search(str(path) + "/"):
            return match.group(1)
        weights = sorted(f for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES)
        if sum(f.stat().st_size for f in weights) <= FULL_HASH_LIMIT:
            return "sha256:" + _folder_digest(path / "config.json", weights, contents=True)
        return "size-sha256:" + _folder_digest(path / "config.json", weights, contents=False)
    try:
        from transformers import AutoConfig

        return getattr(AutoConfig.from_pretrained(model), "_commit_hash", None) or ""
    except (OSError, ValueError):
        return ""
