from dataclasses import replace
from pathlib import Path

import pytest

from annotator.models import Campaign, Candidate, Comparison, Prompt
from annotator.services import campaign_create, prompt_get_or_create
from core.errors import InputError
from core.models import JobStatus
from core.options import OptionError
from generation.models import GenerationRun
from generation.run_config import RunConfig
from generation.sampling import slot_seed
from generation.services import generation_run_create, generation_run_execute
from llm.base import BackendError, GenerationRequest, Sampling, failed_result
from tests.factories import TINY_MODEL, add_pair
from tests.generation.conftest import STORY_PROMPTS, FakeBackend, write_jsonl
from tests.llm.openai_fake import FakeOpenAIServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def stories(db) -> Campaign:
    return campaign_create(name="Stories")


def make_run(campaign: Campaign, prompts: Path | str = "", **options) -> GenerationRun:
    config = RunConfig(model=str(TINY_MODEL), prompts_file=str(prompts), **options)
    return generation_run_create(campaign_name=campaign.name, config=config)


def test_each_prompt_gets_n_candidates_with_provenance_and_one_comparison(stories, prompts_file):
    run = make_run(stories, prompts_file, temperatures=[0.7, 1.1], top_p=[0.95], max_tokens=32, seed=13)
    summary = generation_run_execute(run=run, backends={"a": FakeBackend()})

    assert (summary.prompts, summary.generated, summary.candidates, summary.comparisons) == (6, 6, 12, 6)
    assert Prompt.objects.filter(campaign=stories).count() == 6
    prompt = Prompt.objects.get(campaign=stories, messages=[{"role": "user", "content": STORY_PROMPTS[0]}])
    first, second = prompt.candidates.order_by("metadata__slot")
    assert first.sampling_params == {"temperature": 0.7, "top_p": 0.95, "max_tokens": 32}
    assert second.sampling_params == {"temperature": 1.1, "top_p": 0.95, "max_tokens": 32}
    assert first.seed == slot_seed(base_seed=13, content_hash=prompt.content_hash, slot=0)
    assert second.seed == slot_seed(base_seed=13, content_hash=prompt.content_hash, slot=1)
    assert first.text == f"A story with seed {first.seed}."
    assert (first.model_name, first.model_revision, first.backend) == ("fake-model", "rev-1", "fake")
    assert first.generation.run == run
    assert first.finish_reason == "stop"
    assert first.completion_tokens == 5
    assert first.prompt_tokens == len(STORY_PROMPTS[0])
    comparison = prompt.comparisons.get()
    assert {comparison.candidate_a, comparison.candidate_b} == {first, second}
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED
    assert run.stats["comparisons"] == 6
    assert run.started_at <= run.finished_at


def test_each_candidate_records_how_the_model_saw_its_prompt(stories, tmp_path):
    prompts = write_jsonl(
        tmp_path / "p.jsonl",
        [{"prompt": "Once upon a time"}, {"prompt": [{"role": "user", "content": "Hi"}], "system": "Be kind."}],
    )
    generation_run_execute(run=make_run(stories, prompts), backends={"a": FakeBackend()})
    recorded = {(c.prompt.system, c.prompt_format, c.prompt_text) for c in Candidate.objects.select_related("prompt")}
    # No chat template: the exact text the engine continued (a system message and turns joined by blank lines).
    assert recorded == {("", "text", "Once upon a time"), ("Be kind.", "text", "Be kind.\n\nHi")}

    chats = campaign_create(name="Chats")
    generation_run_execute(run=make_run(chats, prompts), backends={"a": FakeBackend(chat_template=True)})
    assert set(Candidate.objects.filter(prompt__campaign=chats).values_list("prompt_format", "prompt_text")) == {
        ("chat", "")
    }


def test_candidates_cut_off_at_max_tokens_are_stored_as_such_and_counted(stories, prompts_file):
    backend = FakeBackend(finish_for=lambda r: "length" if r.messages[0]["content"] == STORY_PROMPTS[0] else "stop")
    summary = generation_run_execute(run=make_run(stories, prompts_file), backends={"a": backend})
    assert (summary.candidates, summary.truncated) == (12, 2)
    assert Candidate.objects.filter(finish_reason="length").count() == 2


def test_all_slots_of_a_batch_go_to_the_engine_in_one_call(stories, prompts_file):
    backend = FakeBackend()
    generation_run_execute(run=make_run(stories, prompts_file, batch_size=4), backends={"a": backend})
    assert [len(call) for call in backend.calls] == [8, 4]


def test_identical_candidates_are_resampled_with_a_new_seed(stories, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Once upon a time"}])
    first_seeds: list[int] = []

    def text_for(request):
        # The first two samples are the same story up to whitespace; the resample differs.
        if len(first_seeds) < 2:
            first_seeds.append(request.seed)
            return "The cat sat." if not first_seeds[1:] else "The  cat\nsat. "
        return f"Another story {request.seed}"

    summary = generation_run_execute(run=make_run(stories, prompts), backends={"a": FakeBackend(text_for=text_for)})

    assert summary.resamples == 1
    kept, resampled = Candidate.objects.order_by("metadata__slot")
    assert kept.text == "The cat sat."
    assert resampled.metadata["attempt"] == 1
    assert resampled.seed == slot_seed(base_seed=0, content_hash=kept.prompt.content_hash, slot=1, attempt=1)
    assert resampled.seed != first_seeds[1]
    assert Comparison.objects.count() == 1


def test_prompts_still_identical_after_max_resamples_are_reported_and_skipped(stories, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Same"}, {"prompt": "Empty"}, {"prompt": "Fine"}])

    def text_for(request):
        content = request.messages[0]["content"]
        return {"Same": "Always this.", "Empty": "   "}.get(content, f"Story {request.seed}")

    backend = FakeBackend(text_for=text_for)
    summary = generation_run_execute(run=make_run(stories, prompts, max_resamples=2), backends={"a": backend})

    assert (summary.generated, summary.skipped_duplicate, summary.skipped_empty) == (1, 1, 1)
    assert summary.resamples == 2 + 2 * 2  # "Same": slot 1 twice; "Empty": both slots twice
    assert len(backend.calls) == 3
    assert summary.skips == [
        f"{prompts}, line 1: identical responses after 2 resample(s)",
        f"{prompts}, line 2: empty responses after 2 resample(s)",
    ]
    assert list(Prompt.objects.values_list("messages__0__content", flat=True)) == ["Fine"]


def test_prompts_too_long_for_the_context_are_reported_and_skipped_not_truncated(stories, tmp_path):
    long_prompt = "Once upon a time " * 20
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Short"}, {"prompt": long_prompt}])
    summary = generation_run_execute(run=make_run(stories, prompts), backends={"a": FakeBackend(max_prompt_chars=100)})
    assert (summary.generated, summary.skipped_too_long, summary.resamples) == (1, 1, 0)
    assert summary.skips == [f"{prompts}, line 2: prompt too long for the model's context ({len(long_prompt)} tokens)"]
    assert not Prompt.objects.filter(messages__0__content=long_prompt).exists()


def test_with_a_second_model_every_comparison_pairs_model_a_with_model_b(stories, prompts_file):
    run = make_run(stories, prompts_file, model_b=str(TINY_MODEL), n=4)
    backends = {"a": FakeBackend(model_name="base"), "b": FakeBackend(model_name="tuned")}
    summary = generation_run_execute(run=run, backends=backends)

    assert (summary.candidates, summary.comparisons) == (24, 24)
    for comparison in Comparison.objects.select_related("candidate_a", "candidate_b"):
        assert {comparison.candidate_a.model_name, comparison.candidate_b.model_name} == {"base", "tuned"}
    assert Candidate.objects.filter(model_name="tuned", metadata__model="b").count() == 12


def test_random_pairing_makes_the_asked_number_of_comparisons_per_prompt(stories, prompts_file):
    run = make_run(stories, prompts_file, n=4, pairs="random", pairs_per_prompt=2)
    summary = generation_run_execute(run=run, backends={"a": FakeBackend()})
    assert (summary.candidates, summary.comparisons) == (24, 12)
    assert all(prompt.comparisons.count() == 2 for prompt in Prompt.objects.all())


def test_a_crash_keeps_the_committed_batches_and_a_rerun_finishes_with_one_set_per_prompt(stories, prompts_file):
    crashed = make_run(stories, prompts_file, batch_size=2)
    with pytest.raises(RuntimeError, match="engine crashed"):
        generation_run_execute(run=crashed, backends={"a": FakeBackend(fail_on_call=2)})
    crashed.refresh_from_db()
    assert crashed.status == JobStatus.FAILED
    assert crashed.error == "RuntimeError: engine crashed"
    assert Comparison.objects.count() == 2  # the first batch; the second was in flight
    assert Candidate.objects.count() == 4

    backend = FakeBackend()
    summary = generation_run_execute(run=make_run(stories, prompts_file, batch_size=2), backends={"a": backend})

    assert (summary.already_done, summary.generated) == (2, 4)
    assert sum(len(call) for call in backend.calls) == 8  # only the 4 prompts not done were sampled
    for prompt in Prompt.objects.filter(campaign=stories):
        assert prompt.candidates.count() == 2
        assert prompt.comparisons.count() == 1
    assert Prompt.objects.filter(campaign=stories).count() == len(STORY_PROMPTS)


def test_ctrl_c_marks_the_run_interrupted_and_keeps_committed_batches(stories, prompts_file):
    run = make_run(stories, prompts_file, batch_size=3)
    with pytest.raises(KeyboardInterrupt):
        generation_run_execute(run=run, backends={"a": FakeBackend(fail_on_call=2, failure=KeyboardInterrupt())})
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert run.error.startswith("Interrupted: run it again")
    assert run.stats["generated"] == 3
    assert Comparison.objects.count() == 3


def test_a_rerun_of_a_finished_run_samples_nothing(stories, prompts_file):
    generation_run_execute(run=make_run(stories, prompts_file), backends={"a": FakeBackend()})
    backend = FakeBackend()
    summary = generation_run_execute(run=make_run(stories, prompts_file), backends={"a": backend})
    assert (summary.already_done, summary.generated, backend.calls) == (6, 0, [])
    assert Comparison.objects.count() == 6


def test_fill_campaign_generates_for_prompts_without_comparisons_only(stories):
    add_pair(stories, "Already paired", "A", "B")
    waiting, _ = prompt_get_or_create(campaign=stories, prompt="Once upon a time, there was a fox", metadata={"k": 1})
    summary = generation_run_execute(run=make_run(stories, fill_campaign=True), backends={"a": FakeBackend()})
    assert (summary.prompts, summary.generated) == (1, 1)
    assert waiting.comparisons.count() == 1
    assert Prompt.objects.count() == 2  # the waiting prompt was reused, not copied


def test_progress_is_reported_after_each_batch(stories, prompts_file):
    seen = []
    generation_run_execute(
        run=make_run(stories, prompts_file, batch_size=4),
        backends={"a": FakeBackend()},
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(0, 6), (4, 6), (6, 6)]


def test_tokens_per_second_counts_every_generated_token(stories, prompts_file):
    summary = generation_run_execute(run=make_run(stories, prompts_file), backends={"a": FakeBackend()})
    assert summary.tokens_generated == 12 * 5
    assert summary.tokens_per_second > 0
    assert summary.as_dict()["tokens_per_second"] == round(summary.tokens_per_second, 1)


def test_unknown_campaign_is_refused_unless_asked_to_create_it(db, prompts_file):
    config = RunConfig(model=str(TINY_MODEL), prompts_file=str(prompts_file))
    with pytest.raises(InputError, match="No campaign named 'Nope': create it in the admin first"):
        generation_run_create(campaign_name="Nope", config=config)
    run = generation_run_create(campaign_name="Nope", config=config, create_campaign=True)
    assert run.campaign.name == "Nope"
    assert run.status == JobStatus.QUEUED
    assert run.config["prompts_file"] == str(prompts_file)


def test_a_bad_prompts_file_is_refused_before_the_run_is_recorded(stories, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine"}, {"nope": 1}])
    with pytest.raises(InputError, match=r"bad.jsonl, line 2: field 'prompt' is missing"):
        make_run(stories, bad)
    assert not GenerationRun.objects.exists()


@pytest.mark.slow
def test_with_real_vllm_every_candidate_regenerates_from_its_stored_seed_and_settings(
    stories, prompts_file, vllm_backend
):
    run = make_run(stories, prompts_file, temperatures=[0.7, 1.1], top_p=[0.95], max_tokens=40, seed=13)
    summary = generation_run_execute(run=run, backends={"a": vllm_backend})

    assert (summary.generated, summary.comparisons) == (len(STORY_PROMPTS), len(STORY_PROMPTS))
    for comparison in Comparison.objects.select_related("prompt", "candidate_a", "candidate_b"):
        a, b = comparison.candidate_a, comparison.candidate_b
        assert a.text.strip() and b.text.strip()
        assert " ".join(a.text.split()) != " ".join(b.text.split())
        assert (a.backend, a.model_name) == ("vllm", str(TINY_MODEL))
        assert a.finish_reason in ("stop", "length")
        assert 0 < a.completion_tokens <= 40
    candidate = Candidate.objects.order_by("id").last()
    assert candidate.sampling_params == {"temperature": 1.1, "top_p": 0.95, "max_tokens": 40}
    request = GenerationRequest(
        messages=candidate.prompt.messages, sampling=Sampling(**candidate.sampling_params), seed=candidate.seed
    )
    assert vllm_backend.generate([request])[0].text == candidate.text


def test_a_failed_request_keeps_the_prompts_that_got_answers_and_a_rerun_fills_the_rest(stories, prompts_file):
    """An OpenAI-compatible server that fails one request of a batch: what came back is stored."""
    flaky = {"on": True}

    class FlakyBackend(FakeBackend):
        def generate(self, requests):
            results = super().generate(requests)
            if flaky["on"]:
                results[1] = failed_result("The server failed a request for 'fake-model': 503 overloaded")
            return results

    run = make_run(stories, prompts_file)
    with pytest.raises(BackendError, match=r"1 prompt\(s\) got no answer: a request failed \(.*503 overloaded\)"):
        generation_run_execute(run=run, backends={"a": FlakyBackend()})
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "run the same command again" in run.error
    stored = Prompt.objects.filter(campaign=stories).count()
    assert stored == len(STORY_PROMPTS) - 1 and run.stats["failed"] == 1

    flaky["on"] = False
    summary = generation_run_execute(run=make_run(stories, prompts_file), backends={"a": FlakyBackend()})
    assert (summary.generated, summary.already_done) == (1, len(STORY_PROMPTS) - 1)


def test_a_two_model_run_starts_one_engine_at_a_time(stories, prompts_file):
    """Tuned vs base: model A answers every prompt and stops before model B starts (one GPU's memory)."""
    events = []

    class Engine(FakeBackend):
        def generate(self, requests):
            events.append(f"generate {self.model_name}")
            return super().generate(requests)

        def close(self):
            events.append(f"close {self.model_name}")

    def engines(model, options):
        side = "b" if model.endswith("/") else "a"
        events.append(f"start {side}")
        return Engine(model_name=model, text_for=lambda r: f"{r.seed} {side}")

    run = make_run(stories, prompts_file, model_b=str(TINY_MODEL) + "/", batch_size=2)
    summary = generation_run_execute(run=run, engines=engines)
    assert summary.generated == len(STORY_PROMPTS) and summary.comparisons == len(STORY_PROMPTS)
    assert events.index("close " + str(TINY_MODEL)) < events.index("start b")
    assert events[0] == "start a" and events[-1] == "close " + str(TINY_MODEL) + "/"
    models = {c.model_name for c in Candidate.objects.filter(generation__run=run)}
    assert models == {str(TINY_MODEL), str(TINY_MODEL) + "/"}


def test_a_run_on_an_openai_server_the_setting_does_not_list_is_refused_unless_from_the_command_line(
    stories, prompts_file, settings
):
    settings.OPENAI_BASE_URLS = ["http://127.0.0.1:8000/v1"]
    config = RunConfig(model="served", prompts_file=str(prompts_file), backend="openai", base_url="http://10.0.0.1/v1")
    with pytest.raises(OptionError) as caught:
        generation_run_create(campaign_name=stories.name, config=config)
    assert caught.value.message == (
        "base_url http://10.0.0.1/v1 is not a server this site may send requests to: it sends them (with its "
        "OPENAI_API_KEY) only to the servers the PREFSTUDIO_OPENAI_BASE_URLS setting lists, which are: "
        "http://127.0.0.1:8000/v1. Use one of those, or ask the operator to add this one (manage.py generate_pairs "
        "may use any)."
    )
    assert not GenerationRun.objects.exists()
    assert generation_run_create(campaign_name=stories.name, config=config, any_server=True)
    assert generation_run_create(
        campaign_name=stories.name, config=replace(config, base_url="HTTP://127.0.0.1:8000/v1/")
    )


def test_a_queued_run_whose_server_was_removed_from_the_setting_since_fails_before_any_request(
    stories, prompts_file, settings
):
    with FakeOpenAIServer() as server:
        settings.OPENAI_BASE_URLS = [server.url]
        config = RunConfig(model="fake-model", prompts_file=str(prompts_file), backend="openai", base_url=server.url)
        run = generation_run_create(campaign_name=stories.name, config=config)
        settings.OPENAI_BASE_URLS = []
        with pytest.raises(OptionError, match="the PREFSTUDIO_OPENAI_BASE_URLS setting lists, and it lists none"):
            generation_run_execute(run=run)
        assert server.received == []
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert run.error.startswith(f"base_url {server.url} is not a server this site may send requests to")
