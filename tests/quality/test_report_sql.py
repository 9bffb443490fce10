"""The report counted by the database gives the figures of the vote-by-vote computation it replaced, on
random campaigns with everything the figures distinguish, in a fixed number of queries."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from annotator.models import Candidate, Comparison, Judgment, Prompt
from quality.report import campaign_quality_report
from quality.services import judge_audit_sample_draw
from tests.factories import make_campaign, make_user
from tests.quality.reference_report import assert_same_figures, reference_quality_report

pytestmark = pytest.mark.django_db

# (model a, model b, candidate a's metadata): tuned vs base from generate_pairs on either side, imported
# pairs (no side: the name that sorts first tells), one model on both sides, a missing name, an odd side.
MODELS = [
    ("tuned", "base", {"model": "a"}),
    ("base", "tuned", {"model": "b"}),
    ("zeta", "alpha", {}),
    ("alpha", "zeta", {"source": "import"}),
    ("same", "same", {"model": "a"}),
    ("", "alpha", {}),
    ("gamma", "beta", {"model": 5}),
]
VERDICTS = ["a"] * 6 + ["b"] * 5 + ["tie"] * 2 + ["both_bad", "skip", "skip"]


def random_campaign(seed: int, *, pairs: int, overlap: int, monkeypatch: pytest.MonkeyPatch, audit: int = 0):
    """A campaign of `pairs` pairs judged by 0 to 4 of 7 people (one clicks left, one clicks through fast, one
    only skips) and 0 to 2 AI judges, over five days with some judgments at the same instant; texts of
    equal or different lengths; then the overlap lowered by one, so some pairs carry more votes than it. With
    `audit`, each judge's audit sample of that size is drawn (after the votes: the gate reads what is there)."""
    monkeypatch.setattr(Judgment._meta.get_field("created_at"), "auto_now_add", False)
    rng = random.Random(seed)
    campaign = make_campaign(f"Random {seed}", pairs=0, overlap=overlap + 1)
    people = [make_user(f"person{seed}-{i}") for i in range(6)]
    lefty, hasty = people[0], people[1]
    skipper = make_user(f"skipper{seed}")
    judges = [make_user(f"ai-judge-{seed}-{i}") for i in range(2)]
    start = datetime(2025, 3, 1, 22, tzinfo=UTC)  # late in the day (UTC): days differ in other time zones
    for i in range(pairs):
        prompt = Prompt.objects.create(campaign=campaign, messages=[{"role": "user", "content": f"Q{i}"}],
                                       content_hash=f"{seed}-{i}")  # fmt: skip
        model_a, model_b, metadata = rng.choice(MODELS)
        length_a = rng.randint(5, 12)
        length_b = length_a if rng.random() < 0.2 else rng.randint(5, 12)
        a = Candidate.objects.create(prompt=prompt, text="é" * length_a, model_name=model_a, metadata=metadata)
        b = Candidate.objects.create(prompt=prompt, text="x" * length_b, model_name=model_b)
        comparison = Comparison.objects.create(prompt=prompt, candidate_a=a, candidate_b=b)
        when = start + timedelta(hours=rng.randrange(5 * 24))
        for person in rng.sample(people, rng.randint(0, 4)) + ([skipper] if rng.random() < 0.1 else []):
            shown_left = rng.choice("ab")
            verdict = "skip" if person == skipper else rng.choice(VERDICTS)
            if person == lefty and verdict in ("a", "b"):
                verdict = shown_left
            duration = None if rng.random() < 0.1 else rng.randint(3_000, 40_000)
            if person == hasty and duration:
                duration = rng.randint(300, 900)
            Judgment.objects.create(comparison=comparison, annotator=person, verdict=verdict,
                                    shown_left=shown_left, duration_ms=duration, created_at=when)  # fmt: skip
            when += timedelta(minutes=rng.choice([0, 0, 7, 90]))  # equal instants: the id orders them
        for judge in rng.sample(judges, rng.choice([0, 0, 1, 2])):
            details = rng.choice([{"consistent": True}, {"consistent": False, "unparseable": 0},
                                  {"unparseable": rng.randint(1, 2)}, {}])  # fmt: skip
            Judgment.objects.create(comparison=comparison, annotator=judge, verdict=rng.choice(VERDICTS),
                                    shown_left="a", source="ai", details=details,
                                    created_at=when + timedelta(minutes=rng.choice([0, 5])))  # fmt: skip
    campaign.overlap = overlap
    campaign.judge_audit_size = audit
    campaign.save(update_fields=["overlap", "judge_audit_size"])
    for judge in judges if audit else ():
        judge_audit_sample_draw(campaign=campaign, judge=judge)
    return campaign


@pytest.mark.parametrize(("seed", "overlap", "audit"), [(1, 1, 0), (2, 2, 40), (3, 3, 15)])
def test_the_report_gives_the_figures_of_the_vote_by_vote_computation(seed, overlap, audit, monkeypatch, settings):
    campaign = random_campaign(seed, pairs=120, overlap=overlap, monkeypatch=monkeypatch, audit=audit)
    report = campaign_quality_report(campaign=campaign)
    assert_same_figures(report, reference_quality_report(campaign=campaign))
    # The campaign has what each figure distinguishes.
    assert report["progress"]["human_judgments"] > 150 and report["progress"]["skips"] > 10
    assert report["agreement"]["items_with_2_or_more_votes"] > 30
    assert overlap == 1 or report["agreement"]["fleiss_items"] > 10
    judge = report["judge"]
    assert judge["pairs_with_human_majority"] > 10 and judge["unparseable"] > 0
    assert judge["inconsistent"] > 0 and judge["ties"] > 0
    assert judge["consistent_pairs_with_human_majority"] < judge["pairs_with_human_majority"]
    if audit:
        gate = report["judge_gate"]
        assert len(gate["judges"]) == 2 and all(row["audit_pairs"] == audit for row in gate["judges"])
        assert all(row["n"] > 0 and row["awaiting_human_votes"] > 0 for row in gate["judges"])
    else:
        assert report["judge_gate"] is None
    assert len(report["model_win_rates"]) == 3 and len(report["agreement_over_time"]) >= 5
    assert any(row["flags"] for row in report["annotators"])
    assert any(row["username"].startswith("skipper") and row["judgments"] == 0 for row in report["annotators"])
    # Days are UTC days whatever the time zone (as before).
    settings.TIME_ZONE = "America/Los_Angeles"
    assert_same_figures(campaign_quality_report(campaign=campaign), reference_quality_report(campaign=campaign))


def test_an_unjudged_campaign_has_a_report_with_nothing_to_say():
    campaign = make_campaign("Fresh", pairs=3, overlap=2)
    report = campaign_quality_report(campaign=campaign)
    assert_same_figures(report, reference_quality_report(campaign=campaign))
    assert report["progress"] == {"comparisons": 3, "complete": 0, "human_judgments": 0, "skips": 0, "ai_judgments": 0}
    assert report["judge"] is None and report["annotators"] == [] and report["model_win_rates"] == []


@pytest.mark.parametrize("pairs", [10, 60])
@pytest.mark.parametrize("audit", [0, 5])
def test_the_report_takes_the_same_few_queries_however_many_judgments(
    pairs, audit, monkeypatch, django_assert_num_queries
):
    campaign = random_campaign(pairs, pairs=pairs, overlap=2, monkeypatch=monkeypatch, audit=audit)
    # the pairs grouped; their first votes (Fleiss: the overlap was lowered); annotators by day; medians; with an
    # audit sample, the gate: the judges' counts, their audit pairs, people's votes on them
    with django_assert_num_queries(7 if audit else 4):
        campaign_quality_report(campaign=campaign)
