"""An OpenAI-compatible server: `vllm serve` on the tiny model, started and stopped by PID here."""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from annotator.models import Candidate
from annotator.services import campaign_create
from core.errors import InputError
from generation.run_config import RunConfig
from generation.services import generation_run_create, generation_run_execute
from llm.base import REQUEST_FAILED, EngineOptions, GenerationRequest, Sampling, backend_load
from tests.factories import TINY_MODEL
from tests.generation.conftest import STORY_PROMPTS, write_jsonl
from tests.llm.helpers import (
    CAT,
    SAMPLE,
    check_logprobs_of_the_generated_tokens,
    check_samples_differ_and_seeds_reproduce,
    check_too_long_prompts_are_flagged_not_truncated,
)


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
    def test_a_run_with_the_openai_backend_fills_a_campaign(self, vllm_server, tmp_path):
        prompts_file = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": p} for p in STORY_PROMPTS])
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

    def test_a_request_the_server_refuses_fails_alone_and_the_others_are_kept(self, openai_backend):
        good = GenerationRequest(messages=CAT, sampling=SAMPLE, seed=7)
        refused = GenerationRequest(messages=CAT, sampling=Sampling(temperature=-1.0, max_tokens=8), seed=7)
        results = openai_backend.generate([good, refused, good])
        assert [r.finish_reason for r in results] != [REQUEST_FAILED] * 3
        assert results[1].finish_reason == REQUEST_FAILED and "temperature" in results[1].error
        assert results[0].text and results[0].text == results[2].text and results[0].error == ""

    def test_a_model_the_server_does_not_serve_is_refused_with_what_it_serves(self, vllm_server):
        with pytest.raises(InputError, match=r"does not serve 'gpt-4'; it serves: .*stories260K"):
            backend_load(backend="openai", model="gpt-4", options=EngineOptions(base_url=vllm_server))


def test_no_server_at_the_base_url_is_a_clear_error():
    with pytest.raises(InputError, match=r"No OpenAI-compatible server answers at http://127\.0\.0\.1:9/v1"):
        backend_load(backend="openai", model="m", options=EngineOptions(base_url="http://127.0.0.1:9/v1"))
