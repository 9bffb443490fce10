import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from annotator.models import Candidate, Comparison, Prompt
from annotator.services import campaign_create
from core.models import JobStatus
from generation import services
from generation.models import GenerationRun
from generation.run_config import RunConfig
from generation.services import generation_run_create, generation_run_execute
from tests.factories import TINY_MODEL
from tests.generation.conftest import FakeBackend, write_jsonl
from tests.llm.openai_fake import MODEL as SERVED_MODEL
from tests.llm.openai_fake import FakeOpenAIServer

MODEL = str(TINY_MODEL)


def generate(*args: str) -> str:
    out = StringIO()
    call_command("generate_pairs", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--campaign", "Nope"], "No campaign named 'Nope'"),
        (["--prompts", "missing.jsonl"], "missing.jsonl: no such file"),
        (["--model", "./no/model"], "--model ./no/model: no such folder"),
        (["--prompts", "{bad}"], "bad.jsonl, line 2: field 'prompt' is missing"),
        (["--n", "3", "--temperatures", "1,2"], "--temperatures has 2 values"),
        (["--temperatures", "hot"], "--temperatures is 'hot': use a comma-separated list of numbers."),
    ],
)
def test_bad_input_stops_the_command_with_a_message_naming_what_and_where(args, message, prompts_file, tmp_path):
    campaign_create(name="Stories")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine"}, {"text": "no prompt"}])
    defaults = ["--campaign", "Stories", "--model", MODEL, "--prompts", str(prompts_file)]
    with pytest.raises(CommandError) as caught:
        generate(*defaults, *(a.format(bad=bad) for a in args))  # a later option wins over the default
    assert message in str(caught.value)
    assert not Candidate.objects.exists()


@pytest.mark.django_db
def test_the_command_line_may_use_any_openai_server_as_its_user_holds_the_key(prompts_file, settings, monkeypatch):
    settings.OPENAI_BASE_URLS = []
    monkeypatch.setenv("OPENAI_API_KEY", "sk-command-line-key")
    with FakeOpenAIServer() as server:
        out = generate(
            "--campaign", "Served", "--create-campaign", "--model", SERVED_MODEL, "--prompts", str(prompts_file),
            "--backend", "openai", "--base-url", server.url,
        )  # fmt: skip
    assert "Generated for 6 prompt(s): 12 candidate(s), 6 comparison(s)." in out
    assert {r["authorization"] for r in server.received} == {"Bearer sk-command-line-key"}


@pytest.mark.slow
@pytest.mark.django_db
def test_generate_pairs_with_the_transformers_backend_stores_pairs_and_prints_a_summary(prompts_file, engine_env):
    out = generate(
        "--campaign", "Stories", "--create-campaign", "--model", MODEL, "--prompts", str(prompts_file),
        "--backend", "transformers", "--temperatures", "0.7,1.1", "--top-p", "0.95", "--max-tokens", "24",
        "--seed", "13",
    )  # fmt: skip
    assert "Generated for 6 prompt(s): 12 candidate(s), 6 comparison(s)." in out
    assert "Prompts: 6 distinct; 6 done now, 0 already done, skipped: 0 too long" in out
    assert "tokens/s" in out
    candidate = Candidate.objects.order_by("id").first()
    assert candidate.text.strip()
    assert (candidate.backend, candidate.model_name) == ("transformers", MODEL)
    assert candidate.model_revision.startswith("sha256:")
    assert candidate.sampling_params == {"temperature": 0.7, "top_p": 0.95, "max_tokens": 24}
    run = GenerationRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED
    assert run.config["seed"] == 13

    again = generate(
        "--campaign", "Stories", "--model", MODEL, "--prompts", str(prompts_file), "--backend", "transformers"
    )
    assert "6 already done" in again
    assert Comparison.objects.count() == 6


OPENINGS = ("Once upon a time, there was a", "One day, a little", "Lily saw a", "Tom had a")
ANIMALS = (
    "cat dog bird fish frog bear lion duck cow pig horse sheep fox owl bee ant mouse goat deer wolf seal crab hen bat"
)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_run_resumes_with_exactly_one_set_of_candidates_per_prompt(tmp_path: Path, engine_env, vllm_backend):
    """Kill a real `manage.py generate_pairs` (vLLM) after its first writes, rerun, and count.

    All 96 prompts go to the engine at once; its KV cache holds about 90 of these sequences, so they finish in
    waves and the kill lands between two."""
    animals = [f"{opening} {animal}" for opening in OPENINGS for animal in ANIMALS.split()]
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in animals])
    campaign = campaign_create(name="Resume")
    command = [
        sys.executable, "manage.py", "generate_pairs", "--campaign", "Resume", "--model", MODEL,
        "--prompts", str(prompts), "--batch-size", "2", "--max-tokens", "128", "--temperatures", "0.7,1.1",
    ]  # fmt: skip
    env = {**engine_env, "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}"}
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 300
        while Comparison.objects.filter(prompt__campaign=campaign).count() < 2:
            assert process.poll() is None, process.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "nothing written in 300 s"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    killed = GenerationRun.objects.get(campaign=campaign)
    assert killed.status == JobStatus.RUNNING  # it never got to say otherwise
    done_before = Prompt.objects.filter(campaign=campaign, comparisons__isnull=False).count()
    assert 0 < done_before < len(animals), "the run must be killed midway"
    assert Candidate.objects.filter(prompt__campaign=campaign).count() == 2 * done_before  # whole prompts only

    rerun = generation_run_create(campaign_name="Resume", config=RunConfig.from_dict(killed.config))
    summary = generation_run_execute(run=rerun, backends={"a": vllm_backend})

    assert (summary.already_done, summary.generated) == (done_before, len(animals) - done_before)
    assert Prompt.objects.filter(campaign=campaign).count() == len(animals)
    for prompt in Prompt.objects.filter(campaign=campaign):
        assert prompt.candidates.count() == 2
        assert prompt.comparisons.count() == 1
    assert Candidate.objects.filter(generation__run=killed).count() == 2 * done_before
    assert Candidate.objects.filter(generation__run=rerun).count() == 2 * (len(animals) - done_before)


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
@pytest.mark.parametrize("tty", [True, False])
def test_a_progress_bar_is_shown_only_on_a_terminal(tty, prompts_file, monkeypatch, capsys):
    monkeypatch.setattr(services, "backend_load", lambda **kwargs: FakeBackend())
    campaign_create(name="Stories")
    out = Terminal() if tty else StringIO()
    call_command(
        "generate_pairs", "--campaign", "Stories", "--model", MODEL, "--prompts", str(prompts_file), stdout=out
    )
    assert "Generated for 6 prompt(s)" in out.getvalue()
    assert ("6/6" in capsys.readouterr().err) is tty


@pytest.mark.django_db
def test_the_summary_says_how_many_candidates_stopped_at_the_token_limit(prompts_file, monkeypatch):
    cut = FakeBackend(finish_for=lambda r: "length" if r.seed % 2 else "stop")
    monkeypatch.setattr(services, "backend_load", lambda **kwargs: cut)
    campaign_create(name="Stories")
    out = generate("--campaign", "Stories", "--model", MODEL, "--prompts", str(prompts_file))
    truncated = Candidate.objects.filter(finish_reason="length").count()
    assert truncated > 0
    assert (
        f"{truncated} of the 12 candidate(s) stopped at the token limit (finish_reason length): annotators see them "
        "marked as cut off, and exports leave out their pairs unless keep_truncated is set. Raise --max-tokens to "
        "let the answers end." in out
    )


@pytest.mark.django_db
def test_engine_options_are_passed_to_the_backend_and_kept_in_the_runs_config(prompts_file, monkeypatch):
    loaded = []
    monkeypatch.setattr(services, "backend_load", lambda **kwargs: loaded.append(kwargs) or FakeBackend())
    campaign_create(name="Stories")
    generate(
        "--campaign", "Stories", "--model", MODEL, "--prompts", str(prompts_file),
        "--dtype", "bfloat16", "--max-model-len", "256", "--kv-cache-mib", "32", "--revision", "v2",
    )  # fmt: skip
    config = GenerationRun.objects.get().config
    assert (config["dtype"], config["max_model_len"], config["kv_cache_mib"]) == ("bfloat16", 256, 32)
    [call] = loaded
    assert (call["backend"], call["model"]) == ("vllm", MODEL)
    assert (call["options"].dtype, call["options"].kv_cache_bytes, call["options"].revision) == (
        "bfloat16",
        32 << 20,
        "v2",
    )
