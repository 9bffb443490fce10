"""The real data, end to end: import the shared human preferences, judge them through the API as annotators
who see randomised sides, export, and check every row against the file's human labels.

The quick run takes every 5th row (145: all four sources, 51 multi-turn, 4 ties); the slow one all 725.
"""

import json
import time

import pytest
from rest_framework.test import APIClient

from annotator.importing import pairs_import, pairs_read
from annotator.models import Comparison, Judgment
from annotator.services import campaign_create
from exports.services import dataset_export_create, dataset_export_run
from tests.exports.helpers import read_rows
from tests.factories import HUMAN_PREFERENCES, make_user

pytestmark = pytest.mark.django_db


def source_rows(every: int) -> dict[str, dict]:
    with HUMAN_PREFERENCES.open(encoding="utf-8") as handle:
        return {row["id"]: row for row in list(map(json.loads, handle))[::every]}


def judge_through_api(user, campaign, labels: dict[int, tuple[str, int, int]], *, against: bool, limit: int) -> int:
    """GET next / POST judgment until nothing is left (or `limit`), choosing the side the label prefers."""
    client = APIClient()
    client.force_authenticate(user)
    judged = 0
    while judged < limit:
        response = client.get(f"/api/campaigns/{campaign.pk}/next/")
        if response.status_code == 204:
            break
        shown = response.json()
        label, id_a, id_b = labels[shown["id"]]
        if label == "tie":
            choice = "left" if against else "tie"
        else:
            preferred = id_a if label == "a" else id_b
            side = "left" if shown["left"]["id"] == preferred else "right"
            choice = {"left": "right", "right": "left"}[side] if against else side
        posted = client.post(f"/api/comparisons/{shown['id']}/judgments/", {"choice": choice}, format="json")
        assert posted.status_code == 201, posted.content
        judged += 1
    return judged


@pytest.mark.parametrize(
    "every", [pytest.param(5, id="every-5th-row"), pytest.param(1, id="all-725-rows", marks=pytest.mark.slow)]
)
def test_real_preferences_round_trip_through_the_api_and_the_export(tmp_path, every):
    started = time.monotonic()
    source = source_rows(every)
    campaign = campaign_create(name="Human preferences", overlap=3)
    with HUMAN_PREFERENCES.open("rb") as handle:
        pairs = pairs_read(handle, name=HUMAN_PREFERENCES.name)[::every]
    assert pairs_import(rows=pairs, campaign_name=campaign.name).imported == len(source)
    labels = {
        pk: (metadata["label"], id_a, id_b)
        for pk, metadata, id_a, id_b in Comparison.objects.filter(prompt__campaign=campaign).values_list(
            "pk", "metadata", "candidate_a_id", "candidate_b_id"
        )
    }
    contrarian_pairs = len(source) // 5  # carol judges this many pairs, always against the label
    assert judge_through_api(make_user("alice"), campaign, labels, against=False, limit=10_000) == len(source)
    assert judge_through_api(make_user("bob"), campaign, labels, against=False, limit=10_000) == len(source)
    assert judge_through_api(make_user("carol"), campaign, labels, against=True, limit=contrarian_pairs) > 0
    sides = set(Judgment.objects.values_list("shown_left", flat=True))
    assert sides == {"a", "b"}, "annotators saw both orders"
    judged_at = time.monotonic()

    export = dataset_export_run(
        export=dataset_export_create(campaign=campaign, options={"val_fraction": 0.1, "seed": 7}, out_dir=tmp_path)
    )
    rows = read_rows(tmp_path)
    ties = sum(1 for row in source.values() if row["label"] == "tie")
    assert ties == {1: 17, 5: 4}[every]
    assert len(rows) == export.stats["exported"] == len(source) - ties
    assert export.stats["dropped"]["tie"] == ties
    assert export.stats["format"] == "conversational"

    source_id_of = dict(Comparison.objects.filter(prompt__campaign=campaign).values_list("pk", "metadata__id"))
    contrarian = set(Judgment.objects.filter(annotator__username="carol").values_list("comparison_id", flat=True))
    multi_turn = 0
    for row in rows:
        original = source[source_id_of[row["comparison_id"]]]
        preferred, other = (
            (original["response_a"], original["response_b"])
            if original["label"] == "a"
            else (original["response_b"], original["response_a"])
        )
        assert row["chosen"] == [{"role": "assistant", "content": preferred}], original["id"]
        assert row["rejected"] == [{"role": "assistant", "content": other}], original["id"]
        assert row["prompt"] == original["prompt"], original["id"]
        multi_turn += len(row["prompt"]) > 1
        if row["comparison_id"] in contrarian:
            assert (row["votes"], row["agreement"]) == (3, pytest.approx(2 / 3))
            assert sorted(row["annotator_votes"]) == ["chosen", "chosen", "rejected"]
        else:
            assert (row["votes"], row["agreement"]) == (2, 1.0)
    assert multi_turn == sum(1 for r in source.values() if r["multi_turn"] and r["label"] != "tie")

    train = {row["prompt_hash"] for row in read_rows_of(tmp_path, "train")}
    validation = {row["prompt_hash"] for row in read_rows_of(tmp_path, "validation")}
    assert validation and not train & validation
    # Recorded for the docs: how long judging through the API and exporting took.
    print(f"judging through the API: {judged_at - started:.1f}s, export: {time.monotonic() - judged_at:.1f}s")


def read_rows_of(out_dir, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out_dir / f"{split}.parquet").to_pylist()
