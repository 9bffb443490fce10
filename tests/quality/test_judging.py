import math
from dataclasses import dataclass, field

import pytest

from annotator.models import Judgment, Verdict
from core.errors import InputError
from llm.base import PROMPT_TOO_LONG, REQUEST_FAILED, BackendError, GenerationResult, failed_result
from quality.judging import (
    FIRST,
    SECOND,
    TIE,
    OrderReading,
    answer_from_logprobs,
    answer_from_text,
    combine_orders,
    judge_template_load,
    read_answer,
)
from quality.report import campaign_quality_report
from quality.services import judge_pairs_run, judge_user_get_or_create
from tests.factories import add_pair, make_campaign, make_user


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("1", FIRST),
        (" 2\n", SECOND),
        ("0", TIE),
        ("Tie.", TIE),
        ("[[2]] because it is clearer", SECOND),
        ("Response 1 is better.", FIRST),
        ("**1**", FIRST),
        ("Verdict: [[1]] ... on reflection [[2]]", None),
        ("Once upon a time there was a cat", None),
        ("", None),
        ("12 reasons", None),
    ],
)
def test_answers_are_parsed_from_text_or_declared_unparseable(text, answer):
    assert answer_from_text(text) == answer


def test_answers_are_read_from_first_token_logprobs_when_they_hold_most_probability():
    answer, probabilities = answer_from_logprobs({"2": math.log(0.6), " 1": math.log(0.3), "The": math.log(0.05)})
    assert answer == SECOND
    assert probabilities[FIRST] == pytest.approx(0.3)
    # Answer tokens hold under half of the probability: not read from log-probs (the text decides).
    assert answer_from_logprobs({"The": math.log(0.7), "1": math.log(0.2)})[0] is None
    assert answer_from_logprobs(None) == (None, {})


def test_read_answer_prefers_logprobs_and_falls_back_to_text():
    by_logprobs = read_answer(response_1="a", text="1", top_logprobs=[{"1": math.log(0.9)}])
    assert (by_logprobs.answer, by_logprobs.method) == (FIRST, "logprobs")
    by_text = read_answer(response_1="a", text="[[0]]", top_logprobs=[{"[": math.log(0.99)}])
    assert (by_text.answer, by_text.method) == (TIE, "text")
    neither = read_answer(response_1="a", text="It depends.", top_logprobs=None)
    assert (neither.answer, neither.method) == (None, None)


def test_verdicts_map_back_to_the_fixed_candidates():
    assert OrderReading("a", "1", FIRST, "text").verdict == Verdict.A
    assert OrderReading("b", "1", FIRST, "text").verdict == Verdict.B
    assert OrderReading("b", "2", SECOND, "text").verdict == Verdict.A
    assert OrderReading("a", "0", TIE, "text").verdict == Verdict.TIE


def test_both_orders_must_agree_or_the_pair_is_an_inconsistent_tie():
    consistent = combine_orders(OrderReading("a", "1", FIRST, "text"), OrderReading("b", "2", SECOND, "text"))
    assert (consistent.verdict, consistent.consistent) == (Verdict.A, True)
    # "Response 1" both times: position bias, not a preference.
    biased = combine_orders(OrderReading("a", "1", FIRST, "text"), OrderReading("b", "1", FIRST, "text"))
    assert (biased.verdict, biased.consistent) == (Verdict.TIE, False)
    unparseable = combine_orders(OrderReading("a", "1", FIRST, "text"), OrderReading("b", "?", None, None))
    assert (unparseable.verdict, unparseable.consistent, unparseable.unparseable) == (Verdict.SKIP, None, 1)


def test_templates_must_show_the_conversation_and_both_responses(tmp_path):
    default = judge_template_load()
    assert "$response_1" in default.text and len(default.sha256) == 64
    bad = tmp_path / "bad.txt"
    bad.write_text("Which is better, $response_1 or the other one?")
    with pytest.raises(InputError, match=r"lacks \$conversation, \$response_2"):
        judge_template_load(bad)
    with pytest.raises(InputError, match="no such file"):
        judge_template_load(tmp_path / "missing.txt")
    good = tmp_path / "good.txt"
    good.write_text("${conversation}\n1: $response_1\n2: $response_2\n{braces stay}")
    rendered = judge_template_load(good).render(guidelines="", conversation="hi", response_1="x {y}", response_2="z")
    assert rendered == "hi\n1: x {y}\n2: z\n{braces stay}"


@dataclass
class ScriptedBackend:
    """Answers each judging prompt by looking at which text is shown as Response 1."""

    answers: dict[str, str]  # text of the response shown first -> raw answer
    name: str = "scripted"
    model_name: str = "scripted-judge"
    model_revision: str = "r1"
    seen: list = field(default_factory=list)

    def generate(self, requests):
        out = []
        for request in requests:
            prompt = request.messages[0]["content"]
            self.seen.append(prompt)
            first = prompt.split("[Response 1]\n")[1].split("\n\n[Response 2]")[0]
            raw = self.answers[first]
            if raw == PROMPT_TOO_LONG:
                out.append(GenerationResult("", 9999, 0, PROMPT_TOO_LONG))
            elif raw == REQUEST_FAILED:
                out.append(failed_result("The server failed a request: 503"))
            else:
                out.append(GenerationResult(raw, 10, 1, "stop"))
        return out

    def close(self):
        pass


@pytest.mark.django_db
def test_judge_run_asks_both_orders_records_ai_judgments_and_counts_everything():
    campaign = make_campaign("Judged", pairs=0, guidelines="Prefer kindness.")
    agree = add_pair(campaign, "q1", "kind answer", "rude answer")
    inconsistent = add_pair(campaign, "q2", "first text", "second text")
    garbled = add_pair(campaign, "q3", "story a", "story b")
    backend = ScriptedBackend(
        {
            "kind answer": "1",  # a first: picks a
            "rude answer": "2",  # b first: picks the second, a
            "first text": "1",  # always picks whatever is first: inconsistent
            "second text": "1",
            "story a": "Once upon a time",
            "story b": "2",
        }
    )
    judge = judge_user_get_or_create(model="/models/scripted-judge")
    summary = judge_pairs_run(
        campaign=campaign, backend=backend, template=judge_template_load(), judge=judge, batch_size=2
    )
    assert len(backend.seen) == 6, "two orders per pair"
    assert all("Prefer kindness." in prompt for prompt in backend.seen)
    assert (summary.judged, summary.consistent, summary.inconsistent, summary.unparseable_pairs) == (3, 1, 1, 1)
    assert summary.unparseable_answers == 1
    stored = {j.comparison_id: j for j in Judgment.objects.filter(annotator=judge)}
    assert stored[agree.pk].verdict == Verdict.A and stored[agree.pk].details["consistent"] is True
    assert stored[inconsistent.pk].verdict == Verdict.TIE and stored[inconsistent.pk].details["consistent"] is False
    assert stored[garbled.pk].verdict == Verdict.SKIP
    raw = [order["raw"] for order in stored[garbled.pk].details["orders"]]
    assert raw == ["Once upon a time", "2"]
    assert {j.source for j in stored.values()} == {"ai"}
    assert stored[agree.pk].details["model"] == "scripted-judge"
    assert judge.username == "ai-judge-scripted-judge" and not judge.is_active and not judge.has_usable_password()

    again = judge_pairs_run(campaign=campaign, backend=backend, template=judge_template_load(), judge=judge)
    assert (again.already_judged, again.judged) == (3, 0), "a rerun goes on where it stopped"
    report = campaign_quality_report(campaign=campaign)["judge"]
    assert report["pairs_judged"] == 3 and report["unparseable"] == 1
    assert report["consistency_rate"] == 0.5


@pytest.mark.django_db
def test_a_judging_prompt_too_long_for_the_judge_is_counted():
    campaign = make_campaign("Long", pairs=0)
    add_pair(campaign, "q", "huge", "small")
    backend = ScriptedBackend({"huge": PROMPT_TOO_LONG, "small": PROMPT_TOO_LONG})
    summary = judge_pairs_run(
        campaign=campaign, backend=backend, template=judge_template_load(), judge=judge_user_get_or_create(model="m")
    )
    assert (summary.too_long, summary.unparseable_pairs) == (1, 1)


@pytest.mark.django_db
def test_a_request_the_server_failed_stops_the_judge_without_recording_a_verdict_from_one_order():
    campaign = make_campaign("Flaky", pairs=0)
    add_pair(campaign, "q", "fine", "lost")
    backend = ScriptedBackend({"fine": "1", "lost": REQUEST_FAILED})
    judge = judge_user_get_or_create(model="m")
    with pytest.raises(BackendError, match=r"1 of 2 request\(s\) for 'scripted-judge' failed; the first: .*503"):
        judge_pairs_run(campaign=campaign, backend=backend, template=judge_template_load(), judge=judge)
    assert not Judgment.objects.filter(annotator=judge).exists()


@pytest.mark.django_db
def test_a_person_cannot_be_used_as_an_ai_judge():
    make_user("alice")
    with pytest.raises(InputError, match="is a person's account"):
        judge_user_get_or_create(model="m", name="alice")


def test_the_judge_is_unsure_when_its_orders_disagree_or_its_probabilities_are_near_even():
    def reading(response_1, p_first, p_second):
        answer = FIRST if p_first >= p_second else SECOND
        return OrderReading(response_1, answer, answer, "logprobs", {FIRST: p_first, SECOND: p_second})

    sure = combine_orders(reading("a", 0.9, 0.1), reading("b", 0.1, 0.9))
    assert sure.a_share == pytest.approx(0.9) and not sure.uncertain
    close = combine_orders(reading("a", 0.55, 0.45), reading("b", 0.45, 0.55))
    assert close.consistent and close.a_share == pytest.approx(0.55) and close.uncertain
    flipped = combine_orders(reading("a", 0.9, 0.1), reading("b", 0.9, 0.1))  # always the first: inconsistent
    assert flipped.consistent is False and flipped.uncertain
    by_text = combine_orders(OrderReading("a", "1", FIRST, "text"), OrderReading("b", "2", SECOND, "text"))
    assert by_text.a_share is None and not by_text.uncertain


@pytest.mark.django_db
def test_a_campaign_that_asks_gets_the_pairs_the_judge_was_unsure_of_first():
    from annotator.models import UNCERTAIN_PRIORITY
    from annotator.services import assignment_next

    campaign = make_campaign("Unsure first", pairs=0, judge_uncertain_first=True)
    sure = add_pair(campaign, "q1", "kind answer", "rude answer")
    unsure = add_pair(campaign, "q2", "first text", "second text")
    backend = ScriptedBackend({"kind answer": "1", "rude answer": "2", "first text": "1", "second text": "1"})
    judge = judge_user_get_or_create(model="/models/scripted-judge")
    summary = judge_pairs_run(campaign=campaign, backend=backend, template=judge_template_load(), judge=judge)
    assert summary.uncertain_first == 1
    sure.refresh_from_db(), unsure.refresh_from_db()
    assert (sure.priority, unsure.priority) == (0, UNCERTAIN_PRIORITY)
    assert Judgment.objects.get(comparison=unsure, annotator=judge).details["uncertain"] is True
    assert assignment_next(campaign=campaign, annotator=make_user("person")).comparison_id == unsure.pk


@pytest.mark.django_db
def test_without_the_setting_the_queue_order_stays_as_it_was():
    campaign = make_campaign("Unsure in order", pairs=0)
    add_pair(campaign, "q2", "first text", "second text")
    backend = ScriptedBackend({"first text": "1", "second text": "1"})
    judge = judge_user_get_or_create(model="/models/scripted-judge")
    summary = judge_pairs_run(campaign=campaign, backend=backend, template=judge_template_load(), judge=judge)
    assert summary.uncertain_first == 0
    assert set(campaign.prompts.values_list("comparisons__priority", flat=True)) == {0}
