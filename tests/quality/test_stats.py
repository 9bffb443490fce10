"""The statistics against published worked examples and values computed by hand."""

import json
import math
import random
from collections import Counter

import pytest

from quality.stats import (
    Z_95,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    majority,
    mean_interval,
    pairwise_agreement,
    wilson_interval,
)
from tests.factories import HUMAN_PREFERENCES


def tallies(items: list[list]) -> list[tuple[Counter, int]]:
    """Each item's labels as a tally of one item."""
    return [(Counter(labels), 1) for labels in items]


def test_cohen_kappa_matches_the_textbook_example():
    # 50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o = 0.7, p_e = 0.5, kappa = 0.4.
    table = {("y", "y"): 20, ("y", "n"): 5, ("n", "y"): 10, ("n", "n"): 15}
    assert cohen_kappa(table) == pytest.approx(0.4)


def test_cohen_kappa_edge_cases():
    assert cohen_kappa({}) is None
    assert cohen_kappa({("a", "a"): 5}) is None  # chance agreement is 1: undefined
    assert cohen_kappa({("a", "b"): 1, ("b", "a"): 1}) == pytest.approx(-1.0)
    assert cohen_kappa({("a", "a"): 1, ("b", "b"): 1, ("tie", "tie"): 1}) == pytest.approx(1.0)


def test_fleiss_kappa_matches_fleiss_worked_example():
    # The 10 subjects x 14 raters x 5 categories example (Fleiss 1971, as on Wikipedia): kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa([(dict(enumerate(row)), 1) for row in table]) == pytest.approx(0.2099, abs=1e-4)
    # A tally shared by k items weighs as k items.
    twice = [(dict(enumerate(row)), 1) for row in [table[1], *table]]
    weighted = [(dict(enumerate(table[1])), 2), *[(dict(enumerate(row)), 1) for i, row in enumerate(table) if i != 1]]
    assert fleiss_kappa(weighted) == pytest.approx(fleiss_kappa(twice))
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(tallies([["a", "b"], ["a", "b", "a"]]))


def test_krippendorff_alpha_matches_krippendorffs_worked_example():
    # Krippendorff (2011), 4 coders x 12 units with missing values; nominal alpha = 0.743.
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[coder[u] for coder in coders if coder[u] is not None] for u in range(12)]
    assert krippendorff_alpha_nominal(tallies(units)) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_equals_fleiss_kappa_closely_for_complete_data():
    # With no missing data, alpha = 1 - (1 - kappa_Fleiss) * (N*m - 1) / (N*m) ... close to kappa.
    items = [["a", "a", "b"], ["b", "b", "b"], ["a", "tie", "a"], ["b", "a", "b"], ["a", "a", "a"]]
    kappa, alpha = fleiss_kappa(tallies(items)), krippendorff_alpha_nominal(tallies(items))
    total = sum(len(i) for i in items)
    assert alpha == pytest.approx(1 - (1 - kappa) * (total - 1) / total, abs=1e-9)


def test_percent_agreement_and_majority():
    assert pairwise_agreement(tallies([["a", "a"], ["a", "b"], ["b", "b", "b"], ["x"]])) == pytest.approx(
        (1 + 0 + 1) / 3
    )
    assert pairwise_agreement([({"a": 1, "b": 1}, 2), ({"a": 2}, 1)]) == pytest.approx(1 / 3)  # weighted by items
    assert pairwise_agreement(tallies([["a"]])) is None
    assert majority(Counter(["a", "b", "a"])) == "a"
    assert majority({"a": 1, "b": 1, "tie": 0}) is None
    assert majority({"a": 0, "b": 2, "tie": 0}) == "b"
    assert majority({}) is None and majority({"a": 0}) is None


def test_wilson_interval_matches_hand_computation():
    low, high = wilson_interval(8, 10)
    # Wilson 95% for 8/10: (0.4902, 0.9433).
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 5)[0] == 0.0


def test_mean_interval_on_win_tie_loss_scores():
    mean, low, high = mean_interval({1.0: 5, 0.5: 2, 0.0: 1})
    assert mean == pytest.approx(0.75)
    # By hand: variance (5 * 0.25**2 + 2 * 0.25**2 + 0.75**2) / 7, half-width 1.96 * sqrt(variance / 8).
    half = Z_95 * math.sqrt((7 * 0.25**2 + 0.75**2) / 7 / 8)
    assert low == pytest.approx(0.75 - half) and high == 1.0  # 0.75 + half, held to [0, 1]
    assert mean_interval({}) is None and mean_interval({0.5: 1}) == (0.5, 0.0, 1.0)


@pytest.mark.parametrize("flips", [0, 36, 145])
def test_kappa_on_the_real_labels_against_a_second_annotator_with_known_flips(flips):
    labels = [json.loads(line)["label"] for line in HUMAN_PREFERENCES.read_text().splitlines() if line.strip()]
    decisive = [i for i, label in enumerate(labels) if label in ("a", "b")]
    flipped = set(random.Random(flips).sample(decisive, flips))
    second = [("b" if label == "a" else "a") if i in flipped else label for i, label in enumerate(labels)]
    # By hand: p_o from the flips, p_e from each annotator's label shares.
    n = len(labels)
    p_o = (n - flips) / n
    shares_1 = {c: labels.count(c) / n for c in ("a", "b", "tie")}
    shares_2 = {c: second.count(c) / n for c in ("a", "b", "tie")}
    p_e = sum(shares_1[c] * shares_2[c] for c in shares_1)
    expected = (p_o - p_e) / (1 - p_e)
    assert cohen_kappa(Counter(zip(labels, second, strict=True))) == pytest.approx(expected, abs=1e-12)
    if flips == 0:
        assert expected == pytest.approx(1.0)
    if flips == 145:  # 20% of decisive labels flipped: agreement clearly below substantial
        assert 0.45 < expected < 0.75
