"""The three engines on the real tiny model (../shared/models/stories260K): vLLM on CPU, transformers, and an
OpenAI-compatible `vllm serve` started here. The engine-independent parts run without a model."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from annotator.models import Candidate
from annotator.services import campaign_create
from core.errors import InputError
from generation.run_config import RunConfig
from generation.services import generation_run_create, generation_run_execute
from llm.base import PROMPT_TOO_LONG, EngineOptions, GenerationRequest, Sampling, backend_load, completion_text
from llm.transformers_engine import TransformersBackend
from llm.vllm_engine import VllmBackend, vllm_engine_kwargs
from tests.factories import TINY_MODEL

CAT = [{"role": "user", "content": "Once upon a time, there was a cat"}]
LONG = [{"role": "user", "content": "Once upon a time there was a cat. " * 80}]  # 802 tokens > 512
NEAR = [{"role": "user", "content": "Once upon a time there was a cat. " * 48}]  # 482 tokens: 30 left
SAMPLE = Sampling(temperature=1.0, top_p=0.95, max_tokens=48)
GREEDY = Sampling(temperature=0.0, max_tokens=16)


def test_a_conversation_without_chat_template_becomes_its_texts_joined_by_blank_lines():
    assert completion_text(CAT) == "Once upon a time, there was a cat"
    turns = [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"}]
    assert completion_text(turns, "S") == "S\n\nA\n\nB\n\nC"


def test_a_request_takes_a_conversation_or_a_raw_prompt():
    with pytest.raises(ValueError, match="either messages or a raw prompt"):
        GenerationRequest()
    with pytest.raises(ValueError, match="either messages or a raw prompt"):
        GenerationRequest(messages=CAT, prompt="x")


def test_sampling_records_logprobs_only_when_asked():
    assert Sampling(temperature=0.7).as_dict() == {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256}
    assert Sampling(logprobs=5).as_dict()["logprobs"] == 5


def test_cpu_engine_defaults_are_the_measured_ones_and_gpu_options_pass_through():
    cpu = vllm_engine_kwargs(model=str(TINY_MODEL), options=EngineOptions(), on_gpu=False)
    assert cpu == {
        "model": str(TINY_MODEL),
        "tensor_parallel_size": 1,
        "dtype": "float32",
        "max_model_len": 512,
        "kv_cache_memory_bytes": 64 << 20,
        "enforce_eager": True,
        "distributed_executor_backend": "uni",
    }
    options = EngineOptions(dtype="bfloat16", max_model_len=4096, tensor_parallel_size=2, gpu_memory_utilization=0.8)
    gpu = vllm_engine_kwargs(model="org/model", options=options, on_gpu=True)
    assert gpu == {
        "model": "org/model",
        "tensor_parallel_size": 2,
        "dtype": "bfloat16",
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.8,
    }


def test_unknown_backend_is_refused():
    with pytest.raises(InputError, match="Unknown backend 'tgi'"):
        backend_load(backend="tgi", model=str(TINY_MODEL))


def test_a_missing_model_folder_is_refused_before_any_engine_starts():
    with pytest.raises(InputError, match="no such folder"):
        backend_load(backend="vllm", model="../no/such/model")


def test_the_web_process_never_imports_an_engine(engine_env):
    """Pages, admin, tasks and the command module load without torch, vllm, transformers or openai."""
    code = (
        "import django, sys; django.setup(); "
        "import config.urls, generation.admin, generation.tasks, generation.management.commands.generate_pairs; "
        "print(sorted(m for m in ('torch', 'vllm', 'transformers', 'openai') if m in sys.modules))"
    )
    env = {**engine_env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------
# Checks every real engine passes


def check_samples_differ_and_seeds_reproduce(backend) -> None:
    results = backend.generate(
        [
            GenerationRequest(messages=CAT, sampling=SAMPLE, seed=1),
            GenerationRequest(messages=CAT, sampling=SAMPLE, seed=2),
            GenerationRequest(messages=CAT, sampling=SAMPLE, seed=1),
        ]
    )
    first, second, again = results
    assert first.text.strip() and second.text.strip()
    assert first.text != second.text
    assert again.text == first.text
    assert first.prompt_tokens == 11  # BOS + the story opening
    assert 0 < first.completion_tokens <= 48
    assert first.finish_reason in ("stop", "length")
    assert first.top_logprobs is None


def check_logprobs_of_the_generated_tokens(backend) -> None:
    [result] = backend.generate([GenerationRequest(prompt="Once upon a time", sampling=Sampling(0.0, 1.0, 4, 3))])
    assert result.text.startswith(", there was")
    assert len(result.top_logprobs) == result.completion_tokens == 4
    first = result.top_logprobs[0]
    assert 3 <= len(first) <= 4  # the top 3, plus the sampled token when it is not among them
    assert max(first, key=first.get) == ","
    assert all(value <= 0 for position in result.top_logprobs for value in position.values())


def check_too_long_prompts_are_flagged_not_truncated(backend) -> None:
    too_long, near, fine = backend.generate(
        [
            GenerationRequest(messages=LONG, sampling=GREEDY),
            GenerationRequest(messages=NEAR, sampling=Sampling(temperature=0.0, max_tokens=48)),
            GenerationRequest(messages=CAT, sampling=GREEDY),
        ]
    )
    assert too_long.finish_reason == PROMPT_TOO_LONG
    assert (too_long.text, too_long.completion_tokens) == ("", 0)
    # A prompt that fits but leaves less room than max_tokens generates until the context is full.
    assert near.finish_reason != PROMPT_TOO_LONG
    assert 0 < near.completion_tokens <= 48
    assert near.prompt_tokens + near.completion_tokens <= 512
    assert fine.text


@pytest.mark.slow
class TestVllm:
    def test_samples_differ_and_the_same_seed_gives_the_same_text(self, vllm_backend):
        check_samples_differ_and_seeds_reproduce(vllm_backend)

    def test_returns_top_logprobs_of_the_generated_tokens(self, vllm_backend):
        check_logprobs_of_the_generated_tokens(vllm_backend)

    def test_prompts_too_long_for_the_context_are_flagged(self, vllm_backend):
        check_too_long_prompts_are_flagged_not_truncated(vllm_backend)
        assert vllm_backend.max_model_len == 512

    def test_runs_on_the_measured_cpu_settings_and_fingerprints_the_weights(self, vllm_backend):
        assert vllm_backend.engine_kwargs["enforce_eager"] is True
        assert vllm_backend.engine_kwargs["kv_cache_memory_bytes"] == 64 << 20
        assert vllm_backend.model_revision.startswith("sha256:")
        assert not vllm_backend.tokenized.has_chat_template


@pytest.mark.slow
class TestTransformers:
    def test_samples_differ_and_the_same_seed_gives_the_same_text(self, transformers_backend):
        check_samples_differ_and_seeds_reproduce(transformers_backend)

    def test_returns_top_logprobs_of_the_generated_tokens(self, transformers_backend):
        check_logprobs_of_the_generated_tokens(transformers_backend)

    def test_prompts_too_long_for_the_context_are_flagged(self, transformers_backend):
        check_too_long_prompts_are_flagged_not_truncated(transformers_backend)

    def test_greedy_text_is_the_same_as_vllms(self, transformers_backend, vllm_backend):
        request = GenerationRequest(messages=CAT, sampling=Sampling(temperature=0.0, max_tokens=24))
        [ours] = transformers_backend.generate([request])
        [theirs] = vllm_backend.generate([request])
        assert ours.text == theirs.text
        assert ours.text.startswith(" named")  # the continuation keeps its leading space


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory) -> Path:
    """The tiny model with a chat template added (links to its files; nothing copied into the project)."""
    folder = tmp_path_factory.mktemp("chat-model")
    for file in TINY_MODEL.iterdir():
        if file.name != "tokenizer_config.json":
            (folder / file.name).symlink_to(file)
    config = json.loads((TINY_MODEL / "tokenizer_config.json").read_text())
    config["chat_template"] = (
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def vllm_chat_backend(chat_model, vllm_backend):
    """A second engine beside the session's one. Closed with it at the end of the session: closing one
    vLLM engine while another one in the process is still used breaks the other (see VllmBackend.close)."""
    backend = VllmBackend(model=str(chat_model))
    yield backend
    backend.close()


@pytest.mark.slow
def test_models_with_a_chat_template_get_it_in_both_engines(chat_model, vllm_chat_backend):
    request = GenerationRequest(messages=CAT, system="Tell stories.", sampling=GREEDY, seed=3)
    transformers = TransformersBackend(model=str(chat_model))
    rendered = transformers.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Tell stories."}, *CAT], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<s>[system] Tell stories.\n[user] Once upon a time, there was a cat\n[assistant]"
    expected_tokens = len(transformers.tokenizer.encode(rendered, add_special_tokens=False))
    [ours] = transformers.generate([request])
    assert ours.prompt_tokens == expected_tokens
    [theirs] = vllm_chat_backend.generate([request])  # through LLM.chat
    assert theirs.prompt_tokens == expected_tokens  # so the too-long check counts what the engine sees
    assert theirs.text == ours.text


@pytest.mark.slow
def test_two_engines_in_one_process_each_keep_their_own_results(vllm_backend, vllm_chat_backend):
    """What a run with --model-b does: both engines alive, used in turns."""
    request = GenerationRequest(messages=CAT, sampling=SAMPLE, seed=7)
    before = vllm_backend.generate([request])[0].text
    other = vllm_chat_backend.generate([request])[0].text
    assert vllm_backend.generate([request])[0].text == before
    assert vllm_chat_backend.generate([request])[0].text == other != before


# ---------------------------------------------------------------------------------------------------------
# An OpenAI-compatible server: `vllm serve` on the tiny model, started and stopped by PID here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(engine_env, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "vllm-serve.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(TINY_MODEL), "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--max-model-len", "512", "--enforce-eager",
        "--distributed-executor-backend", "uni", "--kv-cache-memory-bytes", str(64 << 20),
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=engine_env)
    try:
        deadline = time.monotonic() + 240
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not healthy after 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def openai_backend(vllm_server):
    backend = backend_load(
        backend="openai", model=str(TINY_MODEL), options=EngineOptions(base_url=vllm_server, concurrency=4)
    )
    yield backend
    backend.close()


@pytest.mark.slow
class TestOpenAIServer:
    def test_samples_differ_and_the_same_seed_gives_the_same_text(self, openai_backend):
        check_samples_differ_and_seeds_reproduce(openai_backend)
        assert openai_backend.use_chat is False  # the model has no chat template: switched to completions

    def test_returns_top_logprobs_of_the_generated_tokens(self, openai_backend):
        check_logprobs_of_the_generated_tokens(openai_backend)

    def test_prompts_too_long_for_the_context_are_flagged(self, openai_backend):
        check_too_long_prompts_are_flagged_not_truncated(openai_backend)

    def test_the_server_gives_the_offline_engines_text_for_the_same_seed(self, openai_backend, vllm_backend):
        request = GenerationRequest(messages=CAT, sampling=SAMPLE, seed=7)
        assert openai_backend.generate([request])[0].text == vllm_backend.generate([request])[0].text

    def test_provenance_names_the_served_model_and_fingerprints_its_folder(self, openai_backend):
        assert openai_backend.model_name == str(TINY_MODEL)
        assert openai_backend.model_revision.startswith("sha256:")

    @pytest.mark.django_db
    def test_a_run_with_the_openai_backend_fills_a_campaign(self, vllm_server, prompts_file):
        campaign_create(name="Served")
        config = RunConfig(
            model=str(TINY_MODEL), prompts_file=str(prompts_file), backend="openai", base_url=vllm_server, max_tokens=24
        )
        run = generation_run_create(campaign_name="Served", config=config)
        summary = generation_run_execute(run=run)
        assert (summary.generated, summary.candidates, summary.comparisons) == (6, 12, 6)
        candidate = Candidate.objects.filter(generation__run=run).first()
        assert (candidate.backend, candidate.model_name) == ("openai", str(TINY_MODEL))
        assert candidate.prompt_tokens > 0 and candidate.completion_tokens > 0

    def test_a_model_the_server_does_not_serve_is_refused_with_what_it_serves(self, vllm_server):
        with pytest.raises(InputError, match=r"does not serve 'gpt-4'; it serves: .*stories260K"):
            backend_load(backend="openai", model="gpt-4", options=EngineOptions(base_url=vllm_server))


def test_no_server_at_the_base_url_is_a_clear_error():
    with pytest.raises(InputError, match=r"No OpenAI-compatible server answers at http://127\.0\.0\.1:9/v1"):
        backend_load(backend="openai", model="m", options=EngineOptions(base_url="http://127.0.0.1:9/v1"))
