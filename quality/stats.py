"""Agreement and bias statistics, written out so they can be read and checked by hand.

Nominal categories throughout (a verdict is "a", "b", "tie" or "both_bad"). An item's ratings come as a
tally (how many raters chose each category), and items as (tally, how many items have it): the report
gets them so from the database, already counted. References:
- Cohen (1960): kappa = (p_o - p_e) / (1 - p_e) for two raters.
- Fleiss (1971): kappa for a fixed number of raters per item.
- Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": alpha = 1 - D_o / D_e from the
  coincidence matrix; any number of raters per item, missing values allowed.
- Wilson (1927): the score interval for a proportion, sound near 0 and 1 and for small n.
"""

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Proportion:
    successes: float
    n: int

    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        return wilson_interval(self.successes, self.n)

    def excludes(self, p: float) -> bool:
        interval = self.ci95
        return interval is not None and not interval[0] <= p <= interval[1]


def wilson_interval(successes: float, n: int) -> tuple[float, float] | None:
    """Wilson score interval (95%) for successes out of n (None when n is 0)."""
    if n == 0:
        return None
    p, z = successes / n, Z_95
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(scores: Mapping[float, int]) -> tuple[float, float, float] | None:
    """Mean of per-item scores, given as how many items had each score, with a normal-approximation 95%
    interval: (mean, low, high)."""
    n = sum(scores.values())
    if n == 0:
        return None
    mean = sum(score * count for score, count in scores.items()) / n
    if n == 1:
        return mean, 0.0, 1.0
    variance = sum(count * (score - mean) ** 2 for score, count in scores.items()) / (n - 1)
    half = Z_95 * math.sqrt(variance / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


Tally = Mapping[Hashable, int]
"""One item's ratings as counts: how many raters chose each category (categories with 0 may be left out)."""


def cohen_kappa(table: Mapping[tuple[Hashable, Hashable], int]) -> float | None:
    """Cohen's kappa for two raters, from how many items got each pair of labels (first rater, second rater).
    None when undefined (no items, or both raters always used one and the same label, so chance agreement
    is 1)."""
    n = sum(table.values())
    if n == 0:
        return None
    observed = sum(count for (x, y), count in table.items() if x == y) / n
    first, second = Counter(), Counter()
    for (x, y), count in table.items():
        first[x] += count
        second[y] += count
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def fleiss_kappa(items: Iterable[tuple[Tally, int]]) -> float | None:
    """Fleiss' kappa over (tally, number of items with that tally); every item must carry the same number
    (>= 2) of ratings."""
    items = [(tally, weight) for tally, weight in items if weight]
    if not items:
        return None
    raters = {sum(tally.values()) for tally, _ in items}
    if len(raters) != 1 or (raters := raters.pop()) < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    n_items = sum(weight for _, weight in items)
    totals: Counter = Counter()
    agreement = 0.0
    for tally, weight in items:
        for category, count in tally.items():
            totals[category] += count * weight
        agreement += weight * (sum(c * c for c in tally.values()) - raters) / (raters * (raters - 1))
    p_bar = agreement / n_items
    p_e = sum((total / (n_items * raters)) ** 2 for total in totals.values())
    if p_e == 1:
        return None
    return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha_nominal(items: Iterable[tuple[Tally, int]]) -> float | None:
    """Krippendorff's alpha for nominal data over (tally, number of items with that tally); items with fewer
    than two ratings are not pairable and are left out. None when there is no disagreement possible (one
    category in all pairable values)."""
    coincidences: Counter = Counter()
    for tally, weight in items:
        m = sum(tally.values())
        if m < 2:
            continue
        for c, n_c in tally.items():
            for k, n_k in tally.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                coincidences[(c, k)] += weight * pairs / (m - 1)
    n_c: Counter = Counter()
    for (c, _k), value in coincidences.items():
        n_c[c] += value
    n = sum(n_c.values())
    if n <= 1:
        return None
    observed_disagreement = sum(v for (c, k), v in coincidences.items() if c != k)
    expected_disagreement = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n - 1)
    if expected_disagreement == 0:
        return None
    return 1 - observed_disagreement / expected_disagreement


def pairwise_agreement(items: Iterable[tuple[Tally, int]]) -> float | None:
    """Share of agreeing rater pairs, averaged over items with two or more ratings (percent agreement), over
    (tally, number of items with that tally)."""
    total = 0.0
    n_items = 0
    for tally, weight in items:
        m = sum(tally.values())
        if m < 2:
            continue
        total += weight * sum(c * (c - 1) for c in tally.values()) / (m * (m - 1))
        n_items += weight
    return total / n_items if n_items else None


def majority(tally: Tally) -> Hashable | None:
    """The most frequent category, or None on a tie for first place (or without ratings)."""
    top = max(tally.values(), default=0)
    leaders = [category for category, count in tally.items() if count == top]
    return leaders[0] if top and len(leaders) == 1 else None
