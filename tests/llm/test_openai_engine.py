"""An OpenAI-compatible server: `vllm serve` on the tiny model, started and stopped by PID here; and a fake one
(tests.llm.openai_fake) for which servers get the key and what their errors show."""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from annotator.models import Candidate
from annotator.services import campaign_create
from core.errors import InputError
from core.options import OptionError
from generation.run_config import RunConfig
from generation.services import generation_run_create, generation_run_execute
from llm.base import REQUEST_FAILED, EngineOptions, GenerationRequest, Sampling, backend_load
from llm.openai_engine import REASON_CHARS, base_url_allowed
from tests.factories import TINY_MODEL
from tests.generation.conftest import STORY_PROMPTS, write_jsonl
from tests.llm.helpers import (
    CAT,
    SAMPLE,
    check_logprobs_of_the_generated_tokens,
    check_samples_differ_and_seeds_reproduce,
    check_too_long_prompts_are_flagged_not_truncated,
)
from tests.llm.openai_fake import MODEL, TEXT, FakeOpenAIServer


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
        backend="openai",
        model=str(TINY_MODEL),
        options=EngineOptions(base_url=vllm_server, concurrency=4),
        any_server=True,
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
    def test_a_run_with_the_openai_backend_fills_a_campaign(self, vllm_server, tmp_path, settings):
        settings.OPENAI_BASE_URLS = [vllm_server]
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
            backend_load(backend="openai", model="gpt-4", options=EngineOptions(base_url=vllm_server), any_server=True)


def test_no_server_at_the_base_url_is_a_clear_error():
    with pytest.raises(InputError, match=r"No OpenAI-compatible server answers at http://127\.0\.0\.1:9/v1"):
        backend_load(
            backend="openai", model="m", options=EngineOptions(base_url="http://127.0.0.1:9/v1"), any_server=True
        )


# ---------------------------------------------------------------------------------------------------------
# Which servers get the key (settings.OPENAI_BASE_URLS), and what their errors show

KEY = "sk-test-0123456789abcdef"
STORY = GenerationRequest(prompt="Once upon a time", sampling=Sampling(max_tokens=4))


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer() as server:
        yield server


def start(url: str, **kwargs):
    return backend_load(backend="openai", model=MODEL, options=EngineOptions(base_url=url), **kwargs)


ALLOWED = "http://models.example.com:8000/v1"


@pytest.mark.parametrize(
    "url",
    [
        ALLOWED,
        ALLOWED + "/",
        "HTTP://Models.Example.COM:8000/v1",
        "http://models.example.com.:8000/v1//",
    ],
)
def test_a_server_is_allowed_however_its_scheme_host_and_trailing_slash_are_written(settings, url):
    settings.OPENAI_BASE_URLS = [ALLOWED + "/"]
    assert base_url_allowed(url) == ALLOWED


@pytest.mark.parametrize(
    "url",
    [
        "http://models.example.com:8000/v1.evil.com",
        "http://models.example.com:8000.evil.com/v1",
        "http://models.example.com.evil.com:8000/v1",
        "http://models.example.com:8000@evil.com/v1",
        "http://user:pass@models.example.com:8000/v1",
        "http://evil.com\\@models.example.com:8000/v1",
        "http://evil.com#@models.example.com:8000/v1",
        "http://models.example.com:8000/v1?x=@evil.com",
        "http://models.example.com:8000/v1/../admin",
        "http://models.example.com:8000/v12",
        "http://models.example.com:8000/v1/models",
        "http://models.example.com:8000",
        "http://models.example.com/v1",
        "http://models.example.com:8001/v1",
        "https://models.example.com:8000/v1",
        "ftp://models.example.com:8000/v1",
        "http://models.example.com:99999/v1",
        " http://models.example.com:8000/v1",
        "",
    ],
)
def test_only_the_allowed_server_itself_is_allowed_no_prefix_or_other_spelling_of_another(settings, url):
    settings.OPENAI_BASE_URLS = [ALLOWED]
    assert base_url_allowed(url) is None


def test_default_ports_are_the_schemes_own(settings):
    settings.OPENAI_BASE_URLS = ["http://a.example.com/v1", "https://b.example.com:443/v1"]
    assert base_url_allowed("http://a.example.com:80/v1") == "http://a.example.com:80/v1"
    assert base_url_allowed("https://b.example.com/v1") == "https://b.example.com:443/v1"
    assert base_url_allowed("https://a.example.com/v1") is None


def test_a_server_the_setting_does_not_list_gets_no_request_and_the_refusal_names_option_and_setting(server, settings):
    settings.OPENAI_BASE_URLS = ["http://127.0.0.1:8000/v1"]
    with pytest.raises(OptionError) as caught:
        start(server.url)
    message = caught.value.message
    assert message.startswith(f"base_url {server.url} is not a server this site may send requests to")
    assert "PREFSTUDIO_OPENAI_BASE_URLS setting lists, which are: http://127.0.0.1:8000/v1." in message
    assert server.received == []


def test_with_nothing_allowed_no_server_gets_a_request(server, settings):
    settings.OPENAI_BASE_URLS = []
    with pytest.raises(OptionError, match="the PREFSTUDIO_OPENAI_BASE_URLS setting lists, and it lists none"):
        start(server.url)
    assert server.received == []


def test_an_allowed_server_gets_the_key_and_answers(server, settings):
    settings.OPENAI_BASE_URLS = [server.url.replace("http://", "HTTP://") + "/"]
    backend = start(server.url)
    [result] = backend.generate([STORY])
    backend.close()
    assert result.text == TEXT
    assert [r["path"] for r in server.received] == ["/v1/models", "/v1/completions"]
    assert {r["authorization"] for r in server.received} == {f"Bearer {KEY}"}


def test_the_command_line_may_send_the_key_to_any_server(server, settings):
    settings.OPENAI_BASE_URLS = []
    backend = start(server.url, any_server=True)
    [result] = backend.generate([STORY])
    backend.close()
    assert result.text == TEXT
    assert {r["authorization"] for r in server.received} == {f"Bearer {KEY}"}


def test_a_redirect_away_from_the_allowed_server_is_stopped_before_it_is_sent(server, settings):
    settings.OPENAI_BASE_URLS = [server.url]
    with FakeOpenAIServer() as elsewhere:
        server.reply("/v1/completions", 307, "", headers={"Location": f"{elsewhere.url}/completions"})
        backend = start(server.url)
        [result] = backend.generate([STORY])
        backend.close()
        assert elsewhere.received == []
    assert result.finish_reason == REQUEST_FAILED
    assert result.error == (
        f"A request to {elsewhere.url.removesuffix('/v1')} was stopped before it was sent: it left the server "
        f"{server.url}, the only one this run may reach (PREFSTUDIO_OPENAI_BASE_URLS)."
    )


def test_an_auth_error_says_its_status_and_nothing_the_server_wrote(server):
    server.reply("/v1/models", 401, {"error": {"message": f"Incorrect API key provided: {KEY[:6]}****cdef"}})
    with pytest.raises(InputError) as caught:
        start(server.url, any_server=True)
    assert caught.value.message == (
        f"{server.url}/models: HTTP 401 from the server (Unauthorized). Is it an OpenAI-compatible server, and "
        "OPENAI_API_KEY its key?"
    )


def test_a_failed_request_records_the_status_not_the_body(server):
    server.reply("/v1/completions", 500, "<html><h1>Admin console</h1><p>db password: hunter2</p></html>")
    backend = start(server.url, any_server=True)
    [result] = backend.generate([STORY])
    backend.close()
    assert result.finish_reason == REQUEST_FAILED
    assert (
        result.error == "The server failed a request for 'fake-model': HTTP 500 from the server (Internal Server Error)"
    )


def test_a_refused_request_keeps_a_short_reason_without_the_key(server):
    reason = (
        f"temperature must be >= 0, got -1.\nYour key {KEY} and token Bearer abcdefghijklmnop0123456789 " + "x" * 200
    )
    server.reply("/v1/completions", 400, {"error": {"message": reason, "type": "BadRequestError"}})
    backend = start(server.url, any_server=True)
    [result] = backend.generate([STORY])
    backend.close()
    prefix = "The server refused a request for 'fake-model': HTTP 400 from the server (Bad Request): "
    assert result.error.startswith(
        prefix + "temperature must be >= 0, got -1. Your key [redacted] and token Bearer [redacted] x"
    )
    assert len(result.error) == len(prefix) + REASON_CHARS and result.error.endswith("…")
    assert KEY not in result.error and "0123456789" not in result.error


@pytest.mark.parametrize("root", [None, "/models/on-the-server-machine"])
def test_a_served_model_whose_folder_is_not_on_this_machine_gets_no_revision(server, root):
    server.root = root
    backend = start(server.url, any_server=True)
    backend.close()
    assert (backend.model_name, backend.model_revision) == (MODEL, "")
