"""The judge gate's figures: people's verdict per audit pair, Cohen's kappa over a / b / neither against a
hand-computed example, consistency, and when the gate refuses."""

import pytest

from annotator.models import JudgeAuditPair, Judgment
from quality.gate import GateThresholds, JudgeAudit, campaign_judge_gate, human_preference
from quality.report import campaign_quality_report
from tests.factories import make_campaign, make_user
from tests.quality.reference_report import assert_same_figures, reference_quality_report

THRESHOLDS = GateThresholds(min_kappa=0.6, min_consistency=0.8, min_pairs=10)


def audit(table, *, judged=None, no_votes=0, split=0, consistent=90, inconsistent=10) -> JudgeAudit:
    n = sum(table.values())
    judged = n + no_votes + split if judged is None else judged
    return JudgeAudit("ai-judge", judged, judged, table, no_votes, split, consistent, inconsistent)


# Ten audit pairs, (judge, people): 4 agree on a, 3 on b, 1 on neither; 1 a against b, 1 b against neither.
TABLE = {("a", "a"): 4, ("b", "b"): 3, ("neither", "neither"): 1, ("a", "b"): 1, ("b", "neither"): 1}


def test_kappa_is_the_closed_form_on_a_hand_computed_table():
    # p_o = 8/10; the judge's marginals a 5, b 4, neither 1, people's a 4, b 4, neither 2:
    # p_e = (5*4 + 4*4 + 1*2) / 100 = 0.38; kappa = (0.8 - 0.38) / (1 - 0.38) = 0.42 / 0.62 = 21/31.
    figures = audit(TABLE)
    assert figures.n == 10 and figures.agreement == pytest.approx(0.8)
    assert figures.kappa == pytest.approx(21 / 31)
    assert figures.consistency == pytest.approx(0.9)
    assert figures.problems(THRESHOLDS, audit_size=20) == []


def test_kappa_is_undefined_when_both_only_ever_said_the_same_thing():
    assert audit({("a", "a"): 12}).kappa is None
    assert audit({("a", "a"): 12}).problems(THRESHOLDS, audit_size=20) == [
        "its kappa is undefined (the judge and people always gave one and the same preference)"
    ]


def test_peoples_verdict_is_the_majority_preference_of_their_counted_votes():
    assert human_preference({"a": 2, "b": 1}) == "a"
    assert human_preference({"tie": 1, "both_bad": 1, "a": 1}) == "neither"  # tie and both bad are one category
    assert human_preference({"a": 1, "b": 1}) is None  # split evenly: it needs another vote
    assert human_preference({"a": 0, "b": 0, "tie": 0, "both_bad": 0}) is None


def test_the_gate_refuses_with_too_little_evidence_saying_how_much_more_is_needed():
    few = audit({("a", "a"): 4, ("b", "b"): 3}, no_votes=1, split=1)
    assert few.problems(THRESHOLDS, audit_size=9) == [
        "not enough evidence: 7 audit pair(s) carry both its verdict and people's, 10 are needed (3 more); its "
        "audit sample holds 9 judged pair(s), too few even once people have voted: raise the campaign's judge "
        "audit size to at least 10 and run judge_pairs again (it tops the sample up from the pairs the judge gave "
        "a verdict)"
    ]
    # The size is big enough already (it was raised, or the judge had judged few pairs): only a rerun helps.
    assert few.problems(THRESHOLDS, audit_size=20)[0].endswith(
        "too few even once people have voted: run judge_pairs again (it tops the sample up from the pairs the "
        "judge gave a verdict)"
    )
    assert few.awaiting == 2
    big_enough = audit({("a", "a"): 4, ("b", "b"): 3}, no_votes=5)
    assert big_enough.problems(THRESHOLDS, audit_size=20) == [
        "not enough evidence: 7 audit pair(s) carry both its verdict and people's, 10 are needed (3 more)"
    ]


def test_the_gate_refuses_a_judge_below_either_threshold():
    disagreeing = audit({("a", "b"): 6, ("b", "a"): 6, ("a", "a"): 3, ("b", "b"): 3})
    assert disagreeing.kappa == pytest.approx(-1 / 3)
    assert disagreeing.problems(THRESHOLDS, audit_size=20) == ["its kappa -0.333 is below 0.6"]
    flipping = audit(TABLE, consistent=70, inconsistent=30)
    assert flipping.problems(THRESHOLDS, audit_size=20) == ["its consistency 0.700 is below 0.8"]
    unchecked = audit(TABLE, consistent=0, inconsistent=0)
    assert unchecked.problems(THRESHOLDS, audit_size=20) == ["none of its pairs could be checked in both orders"]


@pytest.mark.django_db
def test_the_campaigns_figures_read_inconsistent_ties_as_neither_and_skip_what_does_not_count(settings):
    settings.JUDGE_GATE_MIN_PAIRS = 3
    campaign = make_campaign("Gate", pairs=7, overlap=2)
    campaign.judge_audit_size = 6
    campaign.save()
    judge, first, second = make_user("ai-judge-x"), make_user("p1"), make_user("p2")
    comparisons = list(campaign.prompts.values_list("comparisons", flat=True).order_by("id"))
    # (judge's verdict, its details, people's votes) on each audit pair
    audit_pairs = [
        ("a", {"consistent": True}, ["a", "a"]),  # a / a
        ("tie", {"consistent": False}, ["tie"]),  # an inconsistent tie: neither / neither
        ("b", {"consistent": True}, ["a", "skip"]),  # b / a (the skip does not count)
        ("a", {"consistent": True}, ["a", "b"]),  # split evenly: needs another vote
        ("b", {"consistent": True}, ["skip"]),  # no counted vote yet
        ("skip", {"consistent": None, "unparseable": 2}, ["a"]),  # no verdict of the judge's: not judged
    ]
    for comparison_id, (verdict, details, votes) in zip(comparisons, audit_pairs, strict=False):
        Judgment.objects.create(comparison_id=comparison_id, annotator=judge, verdict=verdict, shown_left="a",
                                source="ai", details=details)  # fmt: skip
        JudgeAuditPair.objects.create(comparison_id=comparison_id, judge=judge, seed=0, draw_key="k")
        for person, vote in zip([first, second], votes, strict=False):
            Judgment.objects.create(comparison_id=comparison_id, annotator=person, verdict=vote, shown_left="b")
    # A pair outside the sample counts for consistency only.
    extra = {"annotator": judge, "verdict": "a", "shown_left": "a", "source": "ai", "details": {"consistent": True}}
    Judgment.objects.create(comparison_id=comparisons[6], **extra)
    gate = campaign_judge_gate(campaign=campaign)
    (figures,) = gate.judges
    assert (figures.audit_pairs, figures.judged, figures.n, figures.split, figures.no_human_votes) == (6, 5, 3, 1, 1)
    assert figures.table == {("a", "a"): 1, ("neither", "neither"): 1, ("b", "a"): 1}
    # p_o = 2/3; judge a 1, neither 1, b 1; people a 2, neither 1: p_e = (1*2 + 1*1) / 9 = 1/3; kappa = 1/2
    assert figures.kappa == pytest.approx(0.5)
    assert (figures.consistent, figures.inconsistent, figures.consistency) == (5, 1, pytest.approx(5 / 6))
    assert not gate.passed and figures.problems(gate.thresholds, audit_size=6) == ["its kappa 0.500 is below 0.6"]
    report = campaign_quality_report(campaign=campaign)
    assert_same_figures(report, reference_quality_report(campaign=campaign))
    assert report["judge_gate"]["judges"][0]["awaiting_human_votes"] == 2
    assert report["judge"]["inconsistent"] == 1 and report["judge"]["ties"] == 0
    settings.JUDGE_GATE_MIN_KAPPA = 0.5  # at the threshold (to rounding) clears it
    assert campaign_judge_gate(campaign=campaign).passed


@pytest.mark.django_db
def test_the_gate_is_off_when_the_campaign_audits_nothing(django_assert_num_queries):
    campaign = make_campaign("No audit", pairs=1)
    with django_assert_num_queries(0):
        gate = campaign_judge_gate(campaign=campaign)
    assert not gate.enabled and gate.passed and gate.judges == ()


@pytest.mark.django_db
def test_the_quality_page_shows_the_gate_and_inconsistent_verdicts_apart_from_ties(staff_client):
    from django.urls import reverse

    campaign = make_campaign("Gate page", pairs=3)
    campaign.judge_audit_size = 2
    campaign.save()
    judge = make_user("ai-judge-page")
    verdicts = [("tie", False), ("tie", True), ("a", True)]
    comparisons = campaign.prompts.values_list("comparisons", flat=True).order_by("id")
    for comparison_id, (verdict, consistent) in zip(comparisons, verdicts, strict=True):
        Judgment.objects.create(comparison_id=comparison_id, annotator=judge, verdict=verdict, shown_left="a",
                                source="ai", details={"consistent": consistent})  # fmt: skip
    html = staff_client.get(reverse("quality:campaign_quality", args=[campaign.pk])).content.decode()
    assert "Judge gate: not passed" in html
    assert "not enough evidence: 0 audit pair(s) carry both its verdict and people&#x27;s" in html
    assert '<div class="value">1</div><div class="label">inconsistent: the orders disagreed' in html
    assert '<div class="value">1</div><div class="label">real ties (both orders said tie)' in html
