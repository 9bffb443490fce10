"""The judge's audit sample: drawn at random (seeded, recorded) among the pairs the judge gave a verdict,
topped up on rerun and never redrawn, and served to people before every other pair."""

import hashlib
import io

import pytest
from django.core.management import call_command

from annotator.models import AUDIT_PRIORITY, Comparison, JudgeAuditPair, Judgment
from annotator.services import assignment_next, judgment_submit
from quality.judging import judge_template_load
from quality.services import judge_audit_sample_draw, judge_pairs_run, judge_user_get_or_create
from tests.factories import add_pair, campaign_admin_form, make_campaign, make_user
from tests.quality.test_judging import ScriptedBackend

pytestmark = pytest.mark.django_db


def judged_campaign(name: str, *, pairs: int, audit: int = 0, seed: int = 0, garbled: set[int] = frozenset()):
    """A campaign auditing `audit` pairs of its judge, whose scripted judge prefers candidate a on every pair
    (both orders agree), except the `garbled` pairs, where its answers cannot be read (no verdict)."""
    campaign = make_campaign(name, pairs=0)
    campaign.judge_audit_size, campaign.judge_audit_seed = audit, seed
    campaign.save()
    answers = {}
    for i in range(pairs):
        add_pair(campaign, f"q{i}", f"good {i}", f"bad {i}")
        answers[f"good {i}"], answers[f"bad {i}"] = ("1", "2") if i not in garbled else ("???", "???")
    return campaign, ScriptedBackend(answers)


def run_judge(campaign, backend, **options):
    judge = judge_user_get_or_create(model="scripted")
    template = judge_template_load()
    return judge, judge_pairs_run(campaign=campaign, backend=backend, template=template, judge=judge, **options)


def expected_sample(campaign, judge, *, seed: int, size: int) -> list[int]:
    """The pairs a seeded draw takes, worked out here: the judge's pairs with a verdict, by sha256("seed:id")."""
    judged = Judgment.objects.filter(comparison__prompt__campaign=campaign, annotator=judge)
    with_verdict = judged.exclude(verdict="skip")
    ids = with_verdict.values_list("comparison_id", flat=True)
    return sorted(sorted(ids, key=lambda pk: hashlib.sha256(f"{seed}:{pk}".encode()).hexdigest())[:size])


def sampled(campaign, judge) -> list[int]:
    rows = JudgeAuditPair.objects.filter(comparison__prompt__campaign=campaign, judge=judge)
    return sorted(rows.values_list("comparison_id", flat=True))


def test_the_judge_draws_a_seeded_sample_of_its_verdicts_raises_their_priority_and_records_it():
    campaign, backend = judged_campaign("Audited", pairs=20, audit=6, seed=7, garbled={0, 1, 2})
    judge, summary = run_judge(campaign, backend)
    assert (summary.audit.size, summary.audit.seed, summary.audit.drawn, summary.audit.pairs) == (6, 7, 6, 6)
    sample = sampled(campaign, judge)
    assert sample == expected_sample(campaign, judge, seed=7, size=6)
    garbled = Comparison.objects.filter(candidate_a__text__in=["good 0", "good 1", "good 2"])
    garbled = set(garbled.values_list("pk", flat=True))
    assert not garbled & set(sample), "pairs the judge gave no verdict are not audited"
    for row in JudgeAuditPair.objects.filter(judge=judge):
        assert row.seed == 7 and row.draw_key == hashlib.sha256(f"7:{row.comparison_id}".encode()).hexdigest()
    priorities = dict(Comparison.objects.filter(prompt__campaign=campaign).values_list("pk", "priority"))
    assert {pk for pk, priority in priorities.items() if priority == AUDIT_PRIORITY} == set(sample)
    assert {priority for pk, priority in priorities.items() if pk not in sample} == {0}
    # Another seed, another sample (of the same pairs).
    assert expected_sample(campaign, judge, seed=8, size=6) != sample


def test_a_rerun_keeps_the_sample_tops_it_up_and_never_changes_a_judgment():
    campaign, backend = judged_campaign("Rerun", pairs=12, audit=4)
    judge, first = run_judge(campaign, backend, limit=3)  # the judge has 3 verdicts: the sample cannot be full
    assert (first.audit.drawn, first.audit.pairs) == (3, 3)
    recorded = Judgment.objects.order_by("id").values_list("id", "comparison_id", "verdict", "details")
    judgments = list(recorded)
    _, again = run_judge(campaign, backend, limit=0)  # nothing judged: nothing new to draw from
    assert (again.audit.drawn, again.audit.pairs) == (0, 3)
    _, rest = run_judge(campaign, backend)
    assert (rest.audit.drawn, rest.audit.pairs) == (1, 4)
    kept = sampled(campaign, judge)
    assert set(kept) > set(JudgeAuditPair.objects.order_by("id").values_list("comparison_id", flat=True)[:3])
    assert list(recorded)[:3] == judgments
    # Idempotent: once full, nothing more is drawn; lowering the size removes nothing; raising it tops it up.
    assert judge_audit_sample_draw(campaign=campaign, judge=judge).drawn == 0
    campaign.judge_audit_size = 2
    assert judge_audit_sample_draw(campaign=campaign, judge=judge).pairs == 4
    campaign.judge_audit_size = 6
    assert judge_audit_sample_draw(campaign=campaign, judge=judge).drawn == 2
    assert set(sampled(campaign, judge)) > set(kept)
    assert JudgeAuditPair.objects.count() == 6


def test_a_campaign_that_audits_nothing_draws_nothing():
    campaign, backend = judged_campaign("Unaudited", pairs=4)
    _, summary = run_judge(campaign, backend)
    assert summary.audit is None and not JudgeAuditPair.objects.exists()
    assert set(Comparison.objects.values_list("priority", flat=True)) == {0}


def test_people_are_handed_the_audit_pairs_first():
    campaign, backend = judged_campaign("Served first", pairs=15, audit=4)
    judge, _ = run_judge(campaign, backend)
    audit = set(sampled(campaign, judge))
    assert audit != set(Comparison.objects.order_by("id").values_list("pk", flat=True)[:4]), "not the first by id"
    person = make_user("person")
    served = []
    for _ in range(4):
        assignment = assignment_next(campaign=campaign, annotator=person)
        served.append(assignment.comparison_id)
        judgment_submit(comparison=assignment.comparison, annotator=person, choice="left")
    assert set(served) == audit
    assert assignment_next(campaign=campaign, annotator=person).comparison_id not in audit


def test_the_judge_pairs_command_draws_and_reports_the_audit_sample(monkeypatch):
    campaign, backend = judged_campaign("Told", pairs=5, audit=3)
    monkeypatch.setattr("quality.management.commands.judge_pairs.backend_load", lambda **_: backend)
    out = io.StringIO()
    call_command("judge_pairs", "--campaign", "Told", "--model", "scripted", "--backend", "transformers", stdout=out)
    assert "Audit sample: 3 of 3 pair(s) (3 drawn now, seed 0), served to people first" in out.getvalue()
    assert JudgeAuditPair.objects.filter(comparison__prompt__campaign=campaign).count() == 3


def test_staff_set_the_audit_size_in_the_admin_and_see_the_sample_read_only(staff_client):
    from django.urls import reverse

    campaign, backend = judged_campaign("Admin", pairs=3)
    change = reverse("admin:annotator_campaign_change", args=[campaign.pk])
    page = staff_client.get(change).content.decode()
    assert 'name="judge_audit_size"' in page and 'name="judge_audit_seed"' in page
    form = campaign_admin_form(campaign, judge_audit_size=2, judge_audit_seed=5)
    assert staff_client.post(change, form).status_code == 302
    campaign.refresh_from_db()
    assert (campaign.judge_audit_size, campaign.judge_audit_seed) == (2, 5)
    judge, _ = run_judge(campaign, backend)
    listing = staff_client.get(reverse("admin:annotator_judgeauditpair_changelist")).content.decode()
    assert "Admin" in listing and listing.count(judge.username) >= 2
    row = JudgeAuditPair.objects.first()
    assert (
        staff_client.post(reverse("admin:annotator_judgeauditpair_delete", args=[row.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert JudgeAuditPair.objects.count() == 2
