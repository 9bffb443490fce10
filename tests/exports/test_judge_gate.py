"""The judge gate of an export: `judges` ai or both counts the AI judge's verdicts only once the judge agrees
with people on its audit sample and with itself across the two orders; otherwise the export refuses with the
figures, writes nothing, and says what to do. The dataset card states the gate and what it measured."""

import hashlib
import io
import os
import re

import pytest
from django.core.management import CommandError, call_command

from annotator.models import Comparison, Judgment
from annotator.services import assignment_next, judgment_submit
from core.errors import ConflictError
from core.models import JobStatus
from exports.models import DatasetExport
from exports.services import dataset_export_create, dataset_export_run
from quality.services import judge_audit_sample_draw, judge_user_get_or_create
from tests.exports.helpers import choice_for, read_rows
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.JUDGE_GATE_MIN_KAPPA = 0.6
    settings.JUDGE_GATE_MIN_CONSISTENCY = 0.8
    settings.JUDGE_GATE_MIN_PAIRS = 4


def judged_by_ai(name: str, *, pairs: int = 12, audit: int = 0, inconsistent: int = 0):
    """A campaign whose AI judge prefers a and b in turn, in the order the audit draw takes the pairs (so any
    sample of two or more holds both), the first `inconsistent` pairs by id recorded as inconsistent ties; with
    `audit`, its audit sample drawn."""
    campaign = make_campaign(name, pairs=pairs, overlap=1)
    campaign.judge_audit_size = audit
    campaign.save()
    judge = judge_user_get_or_create(model="scripted")
    comparisons = list(Comparison.objects.filter(prompt__campaign=campaign).order_by("id"))
    flipped = {c.pk for c in comparisons[:inconsistent]}
    in_draw_order = sorted(comparisons, key=lambda c: hashlib.sha256(f"0:{c.pk}".encode()).hexdigest())
    for i, comparison in enumerate(in_draw_order):
        inconsistent_here = comparison.pk in flipped
        Judgment.objects.create(
            comparison=comparison, annotator=judge, verdict="tie" if inconsistent_here else "ab"[i % 2],
            shown_left="a", source="ai", details={"consistent": not inconsistent_here, "unparseable": 0},
        )  # fmt: skip
    if audit:
        judge_audit_sample_draw(campaign=campaign, judge=judge)
    return campaign, judge


def people_judge(campaign, person, verdict_for, count):
    """`person` takes the next `count` pairs they are handed (audit pairs first) and judges them."""
    handed = []
    for _ in range(count):
        assignment = assignment_next(campaign=campaign, annotator=person)
        comparison = assignment.comparison
        handed.append(comparison.pk)
        choice = choice_for(verdict_for(comparison), assignment.shown_left)
        judgment_submit(comparison=comparison, annotator=person, choice=choice)
    return handed


def agreeing(comparison):
    return Judgment.objects.get(comparison=comparison, source="ai").verdict


def disagreeing(comparison):
    return {"a": "b", "b": "a"}[agreeing(comparison)]


def export(campaign, out_dir, **options) -> DatasetExport:
    record = dataset_export_create(campaign=campaign, options={"val_fraction": 0.0, **options}, out_dir=out_dir)
    return dataset_export_run(export=record)


def test_without_an_audit_sample_the_gate_is_off_and_the_card_says_so(tmp_path):
    campaign, _ = judged_by_ai("Ungated")
    record = export(campaign, tmp_path, judges="ai")
    assert record.status == JobStatus.SUCCEEDED and len(read_rows(tmp_path)) == 12
    assert record.stats["judge_gate"]["enabled"] is False
    card = (tmp_path / "README.md").read_text()
    assert "### Judge gate" in card and "Off: the campaign audits none of its AI judge's pairs" in card


def test_the_export_refuses_ai_verdicts_until_people_judged_enough_audit_pairs(tmp_path):
    campaign, _ = judged_by_ai("Too early", audit=6)
    people_judge(campaign, make_user("p1"), agreeing, 2)
    with pytest.raises(ConflictError) as refused:
        export(campaign, tmp_path, judges="ai")
    message = refused.value.message
    assert "Campaign 'Too early' audits its AI judge, and the judge has not earned its place" in message
    # (undefined when both pairs happen to prefer the same side: which pairs the draw took depends on their ids)
    assert re.search(
        r"judge 'ai-judge-scripted': Cohen's kappa with people (1.000|undefined) \(n=2 audit pairs\)", message
    )
    assert "consistency across the two orders 1.000 (12 of 12 pairs)" in message
    assert "4 audit pair(s) still need human votes (0 of them split evenly)" in message
    assert "not enough evidence: 2 audit pair(s) carry both its verdict and people's, 4 are needed (2 more)" in message
    assert "kappa >= 0.6 over at least 4 audit pairs and consistency >= 0.8" in message
    assert "export with `judges` humans, or let people judge the audit pairs" in message
    record = DatasetExport.objects.get()
    assert record.status == JobStatus.FAILED and record.error == message
    assert os.listdir(tmp_path) == [], "nothing written"
    # `both` counts AI verdicts too: refused alike; humans only is not gated.
    with pytest.raises(ConflictError, match="`judges` is both"):
        export(campaign, tmp_path, judges="both")
    assert export(campaign, tmp_path, judges="humans").status == JobStatus.SUCCEEDED


def test_once_people_agree_with_the_judge_on_its_audit_sample_the_export_uses_its_verdicts(tmp_path):
    campaign, judge = judged_by_ai("Earned", audit=6)
    audit = set(campaign.prompts.values_list("comparisons__audits__comparison_id", flat=True)) - {None}
    handed = people_judge(campaign, make_user("p1"), agreeing, 6)
    assert set(handed) == audit, "the audit pairs reached people first"
    record = export(campaign, tmp_path, judges="ai")
    assert record.status == JobStatus.SUCCEEDED and len(read_rows(tmp_path)) == 12
    gate = record.stats["judge_gate"]
    assert gate["passed"] and gate["min_kappa"] == 0.6 and gate["min_pairs"] == 4
    (figures,) = gate["judges"]
    assert (figures["n"], figures["kappa"], figures["consistency"], figures["awaiting_human_votes"]) == (6, 1.0, 1.0, 0)
    card = (tmp_path / "README.md").read_text()
    assert "On: AI verdicts count only if, on a random audit sample of each judge's pairs (6 per judge)" in card
    assert "is at least 0.6 over at least 4 pairs" in card and "on at least 0.8 of its pairs" in card
    assert "| ai-judge-scripted | 6 | 6 | 1.000 | 1.000 | 1.000 (12 of 12) | 0 |" in card
    # No recorded judgment was changed by the audit or the gate.
    assert Judgment.objects.filter(annotator=judge, details__consistent=True).count() == 12


def test_a_judge_people_disagree_with_or_that_flips_with_the_order_is_refused(tmp_path):
    campaign, _ = judged_by_ai("Contrary", audit=6)
    people_judge(campaign, make_user("p1"), disagreeing, 6)
    # People always say the other side: p_o = 0; the judge gave a on 3 of the 6 and b on 3, people b on those 3
    # and a on the others, so p_e = (3 * 3 + 3 * 3) / 36 = 1/2 and kappa = (0 - 1/2) / (1 - 1/2) = -1.
    kappa = "-1.000"
    with pytest.raises(
        ConflictError, match=rf"kappa with people {kappa} \(n=6 audit pairs\).*its kappa {kappa} is below"
    ):
        export(campaign, tmp_path, judges="ai")
    flipping, _ = judged_by_ai("Flipping", audit=12, inconsistent=4)

    people_judge(flipping, make_user("p2"), agreeing, 12)  # people agree with every label, inconsistent ties too
    with pytest.raises(ConflictError, match=r"consistency across the two orders 0.667 \(8 of 12 pairs\)"):
        export(flipping, tmp_path, judges="ai")


def test_the_command_refuses_with_the_figures_and_tells_what_passed(tmp_path):
    campaign, _ = judged_by_ai("Command", audit=6)
    arguments = ["export_preferences", "--campaign", "Command", "--judges", "ai", "--val-fraction", "0"]
    with pytest.raises(CommandError, match=r"not enough evidence: 0 audit pair\(s\)"):
        call_command(*arguments, "--out", str(tmp_path / "refused"), stdout=io.StringIO())
    people_judge(campaign, make_user("p1"), agreeing, 6)
    out = io.StringIO()
    call_command(*arguments, "--out", str(tmp_path / "passed"), stdout=out)
    assert (
        "judge gate passed: ai-judge-scripted kappa 1.000 (n=6 audit pairs, thresholds 0.6 over 4), consistency "
        "1.000 (threshold 0.8)" in out.getvalue()
    )
    judged_by_ai("Unaudited")
    out = io.StringIO()
    call_command(*arguments[:2], "Unaudited", *arguments[3:], "--out", str(tmp_path / "unaudited"), stdout=out)
    assert "AI verdicts counted unchecked: the campaign audits none of its judge's pairs" in out.getvalue()
