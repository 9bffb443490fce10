"""Agreement and bias statistics, written out so they can be read and checked by hand.

Nominal categories throughout (a verdict is "a", "b", "tie" or "both_bad"). References:
- Cohen (1960): kappa = (p_o - p_e) / (1 - p_e) for two raters.
- Fleiss (1971): kappa for a fixed number of raters per item.
- Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": alpha = 1 - D_o / D_e from the
  coincidence matrix; any number of raters per item, missing values allowed.
- Wilson (1927): the score interval for a proportion, sound near 0 and 1 and for small n.
"""

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
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


def mean_interval(scores: Sequence[float]) -> tuple[float, float, float] | None:
    """Mean of per-item scores with a normal-approximation 95% interval: (mean, low, high)."""
    n = len(scores)
    if n == 0:
        return None
    mean = sum(scores) / n
    if n == 1:
        return mean, 0.0, 1.0
    variance = sum((s - mean) ** 2 for s in scores) / (n - 1)
    half = Z_95 * math.sqrt(variance / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def cohen_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa for two raters' labels on the same items. None when undefined (no items, or both
    raters always used one and the same label, so chance agreement is 1)."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for x, y in pairs if x == y) / n
    first, second = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa; every item must carry the same number (>= 2) of ratings."""
    items = [list(item) for item in items]
    if not items:
        return None
    raters = len(items[0])
    if raters < 2 or any(len(item) != raters for item in items):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every item")
    n_items = len(items)
    totals: Counter = Counter()
    agreement = 0.0
    for item in items:
        counts = Counter(item)
        totals.update(counts)
        agreement += (sum(c * c for c in counts.values()) - raters) / (raters * (raters - 1))
    p_bar = agreement / n_items
    p_e = sum((total / (n_items * raters)) ** 2 for total in totals.values())
    if p_e == 1:
        return None
    return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha_nominal(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal data; items with fewer than two ratings are not pairable and
    are left out. None when there is no disagreement possible (one category in all pairable values)."""
    coincidences: Counter = Counter()
    for item in items:
        m = len(item)
        if m < 2:
            continue
        counts = Counter(item)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                coincidences[(c, k)] += pairs / (m - 1)
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


def pairwise_agreement(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Share of agreeing rater pairs, averaged over items with two or more ratings (percent agreement)."""
    shares = []
    for item in items:
        m = len(item)
        if m < 2:
            continue
        counts = Counter(item)
        shares.append(sum(c * (c - 1) for c in counts.values()) / (m * (m - 1)))
    return sum(shares) / len(shares) if shares else None


def majority(labels: Sequence[Hashable]) -> Hashable | None:
    """The most frequent label, or None on a tie for first place."""
    if not labels:
        return None
    (top, count), *rest = Counter(labels).most_common()
    if rest and rest[0][1] == count:
        return None
    return top
