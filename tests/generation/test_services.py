from dataclasses import replace
from pathlib import Path

import pytest

from annotator.models import Campaign, Candidate, Comparison, Prompt
from annotator.services import campaign_create, prompt_get_or_create
from core.errors import InputError
from core.models import JobStatus
from core.options import OptionError
from generation.models import GenerationRun
from generation.prompts import prompts_read_path
from generation.run_config import RunConfig
from generation.sampling import slot_seed
from generation.services import generation_run_create, generation_run_execute
from llm.base import BackendError, GenerationRequest, Sampling, failed_result
from tests.factories import TINY_MODEL, add_pair
from tests.generation.conftest import STORY_PROMPTS, FakeBackend, StreamingFakeBackend, write_jsonl
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
    # The run streamed its requests; one generate() call over all of them (how runs sampled before) gives the
    # same texts and token counts.
    candidates = list(Candidate.objects.select_related("prompt").order_by("id"))
    again = vllm_backend.generate(
        [
            GenerationRequest(messages=c.prompt.messages, sampling=Sampling(**c.sampling_params), seed=c.seed)
            for c in candidates
        ]
    )
    assert [(r.text, r.completion_tokens) for r in again] == [(c.text, c.completion_tokens) for c in candidates]


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


# ---------------------------------------------------------------------------------------------------------
# Engines with a stream of their own (vLLM): fed everything at once, results stored as they finish


def stored(campaign: Campaign) -> dict[tuple[str, int], tuple[int, str, int]]:
    """(prompt, slot) -> (seed, text, attempt) of every candidate of the campaign."""
    return {
        (c.prompt.messages[0]["content"], c.metadata["slot"]): (c.seed, c.text, c.metadata["attempt"])
        for c in Candidate.objects.filter(prompt__campaign=campaign).select_related("prompt")
    }


def test_an_engine_with_a_stream_gets_every_prompt_at_once_and_each_is_stored_whole(stories, prompts_file):
    backend = StreamingFakeBackend()
    seen = []
    run = make_run(stories, prompts_file, batch_size=4, temperatures=[0.7, 1.1])
    summary = generation_run_execute(run=run, backends={"a": backend}, progress=lambda *p: seen.append(p))

    assert backend.in_flight_at_first == 2 * len(STORY_PROMPTS)  # not batch_size prompts' worth
    assert backend.calls == [[request] for request in reversed(backend.added)]  # one by one, last added first
    assert (summary.generated, summary.candidates, summary.comparisons) == (6, 12, 6)
    assert seen == [(0, 6), (4, 6), (6, 6)]  # written 4 finished prompts at a time
    for prompt in Prompt.objects.filter(campaign=stories):
        first, second = prompt.candidates.order_by("metadata__slot")
        assert first.seed == slot_seed(base_seed=0, content_hash=prompt.content_hash, slot=0)
        assert second.sampling_params["temperature"] == 1.1
        assert prompt.comparisons.get().metadata == {"generation_run": run.pk, "slots": [0, 1]}
    assert backend.closed == 1
    # The same run through an engine without a stream (generate() per batch) stores the same candidates.
    batched = campaign_create(name="Batched")
    generation_run_execute(
        run=make_run(batched, prompts_file, batch_size=4, temperatures=[0.7, 1.1]), backends={"a": FakeBackend()}
    )
    assert stored(batched) == stored(stories)


def test_duplicates_are_resampled_while_the_stream_runs_with_the_seeds_of_a_batched_run(stories, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in STORY_PROMPTS])

    def text_for(request):  # the first story of each prompt twice, then the seed's own
        first = {slot_seed(base_seed=0, content_hash=h, slot=s) for h in hashes for s in (0, 1)}
        return "Same story." if request.seed in first else f"Story {request.seed}"

    hashes = [row.content_hash for row in prompts_read_path(prompts).rows]
    backend = StreamingFakeBackend(text_for=text_for)
    summary = generation_run_execute(run=make_run(stories, prompts), backends={"a": backend})
    assert (summary.generated, summary.resamples) == (6, 6)
    batched = campaign_create(name="Batched")
    generation_run_execute(run=make_run(batched, prompts), backends={"a": FakeBackend(text_for=text_for)})
    assert stored(stories) == stored(batched)
    assert {attempt for _, _, attempt in stored(stories).values()} == {0, 1}


def test_a_crash_while_the_engine_runs_keeps_the_finished_prompts_whole_and_a_rerun_samples_only_the_rest(
    stories, prompts_file
):
    # Last added first: prompt 6 (both slots), prompt 5 (both), then slot 1 of prompt 4, and the engine dies.
    crashed = make_run(stories, prompts_file, batch_size=64)
    with pytest.raises(RuntimeError, match="engine crashed"):
        generation_run_execute(run=crashed, backends={"a": StreamingFakeBackend(fail_after=5)})
    crashed.refresh_from_db()
    assert crashed.status == JobStatus.FAILED
    # The two finished prompts were written before the run stopped (not yet batch_size of them); never half a pair.
    assert set(Prompt.objects.values_list("messages__0__content", flat=True)) == set(STORY_PROMPTS[-2:])
    assert (Candidate.objects.count(), Comparison.objects.count(), crashed.stats["generated"]) == (4, 2, 2)

    backend = StreamingFakeBackend()
    summary = generation_run_execute(run=make_run(stories, prompts_file), backends={"a": backend})
    assert (summary.already_done, summary.generated) == (2, 4)
    assert len(backend.added) == 8  # only the 4 prompts not done
    clean = campaign_create(name="Clean")
    generation_run_execute(run=make_run(clean, prompts_file), backends={"a": StreamingFakeBackend()})
    assert stored(stories) == stored(clean)  # same seeds, same texts, as if it had never crashed


def test_ctrl_c_while_the_engine_runs_writes_what_finished_and_marks_the_run_interrupted(stories, prompts_file):
    run = make_run(stories, prompts_file)
    backend = StreamingFakeBackend(fail_after=7, failure=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        generation_run_execute(run=run, backends={"a": backend})
    run.refresh_from_db()
    assert run.error.startswith("Interrupted: run it again")
    assert run.stats["generated"] == 3 == Comparison.objects.count()
    assert backend.closed == 1  # what was left in the engine was dropped


def test_storing_takes_the_same_few_queries_however_many_prompts_finish_together(stories, tmp_path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (4, 24):  # (SQLite splits an INSERT of more than 999 values: 48 candidates of 17 fields fit)
        campaign = campaign_create(name=f"Size {size}")
        prompts = write_jsonl(tmp_path / f"{size}.jsonl", [{"prompt": f"Story {i}"} for i in range(size)])
        run = make_run(campaign, prompts, batch_size=64)
        with CaptureQueriesContext(connection) as queries:
            generation_run_execute(run=run, backends={"a": StreamingFakeBackend()})
        counts.append(len(queries))
        assert Comparison.objects.filter(prompt__campaign=campaign).count() == size
    assert counts[0] == counts[1]  # 13: the run's status and counts, what is done, then the prompts' one write


def test_a_prompt_another_run_stored_meanwhile_is_counted_done_and_not_stored_twice(stories, prompts_file, monkeypatch):
    """Between reading which prompts are done and writing, another run stores the first prompt with its pair."""
    from annotator import services as annotator_services

    real = annotator_services.prompts_get_or_create

    def racing(*, campaign, prompts):
        if not Comparison.objects.exists():
            add_pair(campaign, STORY_PROMPTS[0], "Theirs A", "Theirs B")
        return real(campaign=campaign, prompts=prompts)

    monkeypatch.setattr("generation.services.prompts_get_or_create", racing)
    summary = generation_run_execute(run=make_run(stories, prompts_file), backends={"a": StreamingFakeBackend()})
    assert (summary.generated, summary.already_done) == (5, 1)
    first = Prompt.objects.get(campaign=stories, messages__0__content=STORY_PROMPTS[0])
    assert list(first.candidates.values_list("text", flat=True)) == ["Theirs A", "Theirs B"]
    assert Prompt.objects.filter(campaign=stories).count() == 6


def test_prompts_created_by_another_writer_meanwhile_are_reused_not_duplicated(stories, monkeypatch):
    from annotator.services import PromptSpec, prompts_get_or_create

    theirs, _ = prompt_get_or_create(campaign=stories, prompt="One")
    real = Prompt.objects.filter
    calls = []

    def not_seen_yet(*args, **kwargs):  # the other writer committed "One" just after our look-up
        calls.append(kwargs)
        return real(pk__in=[]) if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(Prompt.objects, "filter", not_seen_yet)
    got = prompts_get_or_create(campaign=stories, prompts=[PromptSpec(prompt="One"), PromptSpec(prompt="Two")])
    assert [(p.messages[0]["content"], created) for p, created in got] == [("One", False), ("Two", True)]
    assert got[0][0] == theirs
    assert Prompt.objects.filter(campaign=stories).count() == 2


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("A story\x00 with a NUL.", "holds a NUL character (at character 8), which cannot be stored: remove it"),
        (
            "A story with half a character: \ud800.",
            "holds a lone surrogate (U+D800 at character 32), half of a character that is not text: fix the "
            "encoding that produced it",
        ),
    ],
)
def test_a_response_the_database_cannot_store_is_sampled_again_and_never_stored(stories, tmp_path, bad, why):
    """PostgreSQL refuses NUL in text, and no database takes a lone surrogate: such a response would stop the run."""
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Fine"}, {"prompt": "Always bad"}])
    [fine_hash, _] = [row.content_hash for row in prompts_read_path(prompts).rows]
    first_of_slot_1 = slot_seed(base_seed=0, content_hash=fine_hash, slot=1)

    def text_for(request):
        if request.messages[0]["content"] == "Always bad" or request.seed == first_of_slot_1:
            return bad
        return f"Story {request.seed}"

    run = make_run(stories, prompts, temperatures=[0.7, 1.1], max_resamples=2)
    summary = generation_run_execute(run=run, backends={"a": StreamingFakeBackend(text_for=text_for)})

    assert (summary.generated, summary.skipped_unstorable, summary.unstorable) == (1, 1, 2)
    assert summary.resamples == 1 + 2 * 2  # "Fine": slot 1 once; "Always bad": both slots twice
    fine = Prompt.objects.get(campaign=stories)
    assert fine.messages[0]["content"] == "Fine"
    assert sorted(fine.candidates.values_list("metadata__attempt", flat=True)) == [0, 1]
    assert bad not in set(Candidate.objects.values_list("text", flat=True))
    assert summary.skips == [f"{prompts}, line 2: the response {why}, still after 2 resample(s)"]
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.skipped_count == 1


def test_the_candidates_service_refuses_text_the_database_cannot_store(stories):
    from annotator.services import candidates_create

    prompt, _ = prompt_get_or_create(campaign=stories, prompt="Hi")
    with pytest.raises(InputError, match=r"The candidate's text holds a NUL character \(at character 2\)"):
        candidates_create(candidates=[Candidate(prompt=prompt, text="ok"), Candidate(prompt=prompt, text="a\x00")])
    assert not Candidate.objects.exists()
