"""The leaderboard from the database: what counts as a vote, who is ranked and how, the head-to-head matrix, the
length-controlled strengths, and the one query that reads it all."""

import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator.services import campaign_create
from leaderboard.bradley_terry import ELO_PER_LOGIT
from leaderboard.options import LeaderboardOptions
from leaderboard.selectors import leaderboard_pairs
from leaderboard.services import leaderboard_build
from rounds.models import Round, Series
from tests.leaderboard.helpers import pair, vote

pytestmark = pytest.mark.django_db
QUICK = LeaderboardOptions(bootstrap=0)


def by_model(board: dict) -> dict[str, dict]:
    return {row["model"]: row for row in board["models"]}


@pytest.fixture
def campaign():
    return campaign_create(name="Arena")


def test_two_models_are_ranked_by_the_log_odds_of_their_votes_with_ties_and_both_bad_as_halves(campaign):
    first = pair(campaign, "Q1", "big", "small")
    second = pair(campaign, "Q2", "small", "big")
    vote(first, "a", "a", "a", "b", "tie", "skip")
    vote(second, "b", "b", "a", "both_bad", "skip")
    board = leaderboard_build(campaign=campaign, options=QUICK)
    big, small = board["models"]
    assert (big["model"], big["rank"], small["model"], small["rank"]) == ("big", 1, "small", 2)
    # big: 5 wins, 2 losses, 2 halves -> 6 to 3; skips never count.
    assert (big["votes"], big["decisive"], big["wins"], big["ties"], big["losses"]) == (9, 7, 5, 2, 2)
    assert big["win_rate"] == pytest.approx(6 / 9)
    assert big["strength"] - small["strength"] == pytest.approx(ELO_PER_LOGIT * math.log(6 / 3), abs=0.5)
    assert (big["strength"] + small["strength"]) / 2 == pytest.approx(1000)
    assert board["totals"] | {"left_out": None} == {
        "pairs": 2, "pairs_counted": 2, "votes": 9, "decisive": 7, "ties": 2, "prompts": 2, "groups": 1,
        "left_out": None,
    }  # fmt: skip


def test_the_ranking_orders_by_strength_and_puts_models_without_votes_last(campaign):
    for i, (winner, loser) in enumerate([("gold", "silver"), ("silver", "bronze"), ("gold", "bronze")]):
        vote(pair(campaign, f"Q{i}", winner, loser), "a", "a", "a", "b")
    pair(campaign, "Q9", "gold", "unjudged")  # appears, nobody judged it
    vote(pair(campaign, "Q10", "bronze", "skipped"), "skip")
    rows = leaderboard_build(campaign=campaign, options=QUICK)["models"]
    assert [row["model"] for row in rows] == ["gold", "silver", "bronze", "skipped", "unjudged"]
    assert [row["rank"] for row in rows] == [1, 2, 3, None, None]
    assert rows[0]["strength"] > rows[1]["strength"] > rows[2]["strength"]
    for row in rows[3:]:
        assert (row["strength"], row["ci95"], row["strength_lc"], row["votes"], row["win_rate"]) == (
            None, None, None, 0, None,
        )  # fmt: skip


def test_a_model_whose_votes_are_all_ties_is_rated_level_with_its_opponent(campaign):
    vote(pair(campaign, "Q1", "even", "steady"), "tie", "both_bad", "tie")
    vote(pair(campaign, "Q2", "steady", "weak"), "a", "a", "a")
    rows = by_model(leaderboard_build(campaign=campaign, options=QUICK))
    assert rows["even"]["decisive"] == 0 and rows["even"]["votes"] == 3
    assert rows["even"]["strength"] == pytest.approx(rows["steady"]["strength"], abs=15)
    assert rows["even"]["win_rate"] == 0.5
    assert rows["even"]["rank"] is not None


def test_judges_pick_human_ai_or_both_votes_as_the_export_does(campaign):
    humans_only = pair(campaign, "Q1", "m1", "m2")
    vote(humans_only, "a", "a")
    vote(humans_only, "b", source="ai")
    ai_only = pair(campaign, "Q2", "m1", "m2")
    vote(ai_only, "b", "b", "b", source="ai")
    votes = {
        judges: by_model(leaderboard_build(campaign=campaign, options=LeaderboardOptions(judges=judges, bootstrap=0)))
        for judges in ("humans", "ai", "both")
    }
    assert (votes["humans"]["m1"]["wins"], votes["humans"]["m1"]["losses"]) == (2, 0)
    assert (votes["ai"]["m1"]["wins"], votes["ai"]["m1"]["losses"]) == (0, 4)
    # both: the humans decide the first pair (the AI's vote there does not count), the AI the second.
    assert (votes["both"]["m1"]["wins"], votes["both"]["m1"]["losses"]) == (2, 3)


def test_pairs_of_one_model_and_pairs_without_a_model_name_are_left_out_and_counted(campaign):
    vote(pair(campaign, "Q1", "solo", "solo"), "a", "b", "a")
    vote(pair(campaign, "Q2", "", "solo"), "a")
    vote(pair(campaign, "Q3", "solo", "duo"), "a")
    board = leaderboard_build(campaign=campaign, options=QUICK)
    assert board["totals"]["left_out"] == {"same_model": {"pairs": 1, "votes": 3}, "unnamed": {"pairs": 1, "votes": 1}}
    assert [(row["model"], row["votes"]) for row in board["models"]] == [("solo", 1), ("duo", 1)]


def test_the_matrix_has_observed_win_rates_votes_and_the_fitted_chances(campaign):
    vote(pair(campaign, "Q1", "x", "y"), "a", "a", "a", "b")
    vote(pair(campaign, "Q2", "y", "z"), "a", "tie")
    board = leaderboard_build(campaign=campaign, options=QUICK)
    matrix = {row["model"]: row["cells"] for row in board["matrix"]}
    order = [row["model"] for row in board["matrix"]]
    assert order == [row["model"] for row in board["models"]] == ["x", "y", "z"]
    assert matrix["x"][0] is None
    assert matrix["x"][1] | {"expected": None, "expected_lc": None} == {
        "opponent": "y", "votes": 4, "win_rate": 0.75, "expected": None, "expected_lc": None,
    }  # fmt: skip
    assert matrix["y"][0]["win_rate"] == 0.25
    assert matrix["y"][2] == matrix["y"][2] | {"votes": 2, "win_rate": 0.75}
    assert matrix["x"][2]["votes"] == 0 and matrix["x"][2]["win_rate"] is None  # never met: the fit still says
    assert matrix["x"][2]["expected"] > matrix["x"][1]["expected"] > 0.5
    assert matrix["x"][1]["expected"] + matrix["y"][0]["expected"] == pytest.approx(1)


def test_models_never_compared_form_groups_without_fitted_chances_between_them(campaign):
    vote(pair(campaign, "Q1", "p", "q"), "a", "b", "a")
    vote(pair(campaign, "Q2", "r", "s"), "b", "b")
    board = leaderboard_build(campaign=campaign, options=QUICK)
    assert board["totals"]["groups"] == 2
    rows = by_model(board)
    assert {rows["p"]["group"], rows["q"]["group"]} != {rows["r"]["group"], rows["s"]["group"]}
    cells = {(row["model"], cell["opponent"]): cell for row in board["matrix"] for cell in row["cells"] if cell}
    assert cells[("p", "r")]["expected"] is None and cells[("p", "q")]["expected"] is not None


def test_length_control_removes_a_bias_for_the_longer_answer(campaign):
    # "verbose" writes the longer answer on 8 prompts of 10, "terse" on 2; the longer answer always wins,
    # whichever model wrote it. Raw, verbose is far ahead; at equal length the two are level.
    for i in range(10):
        long, short = "x" * 400, "x" * 150
        text_v, text_t = (long, short) if i < 8 else (short, long)
        comparison = pair(campaign, f"Q{i}", "verbose", "terse", text_a=text_v, text_b=text_t)
        vote(comparison, *(["a"] * 3 if i < 8 else ["b"] * 3))
    board = leaderboard_build(campaign=campaign, options=LeaderboardOptions(bootstrap=50))
    rows = by_model(board)
    assert rows["verbose"]["strength"] - rows["terse"]["strength"] > 200
    assert abs(rows["verbose"]["strength_lc"] - rows["terse"]["strength_lc"]) < 20
    length = board["length"]
    assert length["unit"] == "characters" and length["scale"] == 250
    assert length["coefficient"] > 3 and length["longer_wins"] > 0.95
    low, high = length["ci95"]
    assert low <= length["coefficient"] <= high


def test_bootstrap_intervals_bracket_the_strengths_and_repeat_with_the_seed(campaign):
    for i in range(8):
        vote(pair(campaign, f"Q{i}", "alpha", "beta"), *("a", "a", "b") if i % 2 else ("a", "b", "tie"))
        vote(pair(campaign, f"Q{i}", "beta", "gamma"), "a", "b" if i % 3 else "a")
    boards = [leaderboard_build(campaign=campaign, options=LeaderboardOptions(seed=seed)) for seed in (3, 3, 4)]
    assert boards[0]["models"] == boards[1]["models"]
    assert boards[0]["models"] != boards[2]["models"]
    for row in boards[0]["models"]:
        low, high = row["ci95"]
        assert low <= row["strength"] <= high and low < high
        low, high = row["ci95_lc"]
        assert low <= row["strength_lc"] <= high


def test_all_campaigns_together_and_a_rounds_checkpoint_by_its_rounds_name(campaign):
    other = campaign_create(name="Other")
    checkpoint = "var/rounds/series-1/round-1/model"
    series = Series.objects.create(name="Stories")
    Round.objects.create(series=series, number=1, policy_model="base", tuned_model=checkpoint)
    vote(pair(campaign, "Q1", checkpoint, "base"), "a", "a")
    vote(pair(other, "Q1", "base", "rival"), "a")
    board = leaderboard_build(campaign=None, options=QUICK)
    assert board["campaign"] is None
    rows = by_model(board)
    assert set(rows) == {checkpoint, "base", "rival"}
    assert rows[checkpoint]["label"] == "Stories, round 1" and rows["base"]["label"] == ""
    # The same prompt in two campaigns is one prompt for the bootstrap.
    assert board["totals"]["prompts"] == 1
    assert by_model(leaderboard_build(campaign=other, options=QUICK)).keys() == {"base", "rival"}


def test_the_votes_are_read_in_one_query_whatever_the_number_of_pairs(campaign):
    for i in range(5):
        vote(pair(campaign, f"Q{i}", "one", "two", text_a="a" * i), "a", "b", "tie", "both_bad", "skip")
        vote(pair(campaign, f"Q{i}", "two", "three"), "b", source="ai")
    with CaptureQueriesContext(connection) as queries:
        pairs = leaderboard_pairs(campaign=campaign, judges="both")
    assert len(queries) == 1
    assert len(pairs) == 10
    first = pairs[0]
    assert (first.model_a, first.model_b, first.length_a, first.length_b) == ("one", "two", 0, 1)
    assert (first.a, first.b, first.tie, first.both_bad) == (1, 1, 1, 1)
    assert (pairs[1].a, pairs[1].b) == (0, 1)
