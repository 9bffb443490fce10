"""Bradley-Terry strengths from pairwise votes: a penalised logistic regression, fitted by Newton's method, with
an optional length covariate and a bootstrap that resamples prompts.

The model: when model i's response meets model j's, i wins with probability

    P(i beats j) = sigmoid(theta_i - theta_j + gamma * x),        sigmoid(z) = 1 / (1 + exp(-z))

where x is the length covariate of the pair (zero for the plain fit). Written per comparison as a logistic
regression, the row of the design matrix is +1 in model a's column, -1 in model b's and x in the last column;
the response is the share of the pair's votes that went to a (a tie counts half for each side). With the
length covariate the thetas are the strengths *at equal length* (x = 0), length-controlled AlpacaEval's
estimate, with their x: tanh(delta / s), delta the length of a's response minus b's, s its spread.

Only differences of theta are identified, and a model that won (or lost) every vote has an infinite
maximum-likelihood strength. A small ridge penalty, ridge/2 * |beta|^2, settles both: the optimum is finite, and
since the votes' gradient sums to zero over the models of a connected group, the penalty's must too, so the
thetas of each group of models compared (directly or through others) sum to zero. `RIDGE` is the prior of a
normal distribution of standard deviation 10 on the logit scale (1,737 Elo points): it only matters where the
votes say "unbounded".

The length coefficient gets a far smaller penalty, `RIDGE_LENGTH`: it is one number that every vote informs. It
matters when length alone explains every vote (the longer answer always won): the likelihood then approaches its
best as gamma grows, whatever the strengths, and with equal penalties the fit would split the credit between
gamma and the models (for a model that wrote the longer answer in 4 pairs of 5, half its raw lead would stay).
With gamma's penalty 10^4 times smaller, length takes the credit and the models are level, as they should be.
"""

import math
from dataclasses import dataclass

import numpy as np

RIDGE = 0.01
RIDGE_LENGTH = 1e-6
ELO_PER_LOGIT = 400 / math.log(10)  # Elo's scale: 400 points for odds of 10 to 1
ELO_MEAN = 1000.0
_MAX_ITERATIONS = 100
_TOLERANCE = 1e-10


@dataclass(frozen=True)
class Games:
    """The votes of each judged comparison, as parallel arrays (one entry per comparison)."""

    a: np.ndarray  # index of candidate a's model
    b: np.ndarray  # index of candidate b's model (never equal to a)
    wins_a: np.ndarray  # votes for a, ties counting half
    wins_b: np.ndarray  # votes for b, ties counting half
    length: np.ndarray  # the length covariate x
    prompt: np.ndarray  # index of the comparison's prompt: the unit the bootstrap resamples
    n_models: int

    @property
    def n_prompts(self) -> int:
        return int(self.prompt.max()) + 1 if len(self.prompt) else 0


def sigmoid(z: np.ndarray | float) -> np.ndarray | float:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # exact, and never overflows


def _design(games: Games, *, with_length: bool) -> np.ndarray:
    rows = np.arange(len(games.a))
    design = np.zeros((len(games.a), games.n_models + with_length))
    design[rows, games.a] = 1.0
    design[rows, games.b] = -1.0
    if with_length:
        design[:, -1] = games.length
    return design


def bt_fit(
    games: Games,
    *,
    with_length: bool = False,
    weights: np.ndarray | None = None,
    ridge: float = RIDGE,
    ridge_length: float = RIDGE_LENGTH,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """The penalised maximum-likelihood (theta_0 ... theta_{K-1}[, gamma]) on the logit scale.

    `weights` multiplies each comparison's votes (a bootstrap resample counts a prompt drawn twice twice).
    Newton's method with step halving: the penalised log-likelihood is strictly concave, so it converges from
    anywhere, in a few steps from `start` (the full fit, for a bootstrap resample).
    """
    if ridge <= 0 or ridge_length <= 0:
        raise ValueError(
            f"ridge is {ridge}, ridge_length {ridge_length}: use positive penalties, else the fit may diverge"
        )
    scale = np.ones(len(games.a)) if weights is None else weights
    won, played = games.wins_a * scale, (games.wins_a + games.wins_b) * scale
    voted = played > 0  # a comparison without votes (or not drawn) adds nothing: leave its row out
    design, won, played = _design(games, with_length=with_length)[voted], won[voted], played[voted]
    beta = np.zeros(design.shape[1]) if start is None else start.astype(float).copy()
    penalty = np.full(design.shape[1], ridge)
    if with_length:
        penalty[-1] = ridge_length

    def loss(b: np.ndarray) -> float:
        z = design @ b
        return float(won @ np.logaddexp(0.0, -z) + (played - won) @ np.logaddexp(0.0, z) + 0.5 * penalty @ b**2)

    current = loss(beta)
    for _ in range(_MAX_ITERATIONS):
        p = sigmoid(design @ beta)
        gradient = design.T @ (won - played * p) - penalty * beta
        hessian = (design.T * (played * p * (1.0 - p))) @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-8:
            candidate = beta + size * step
            new = loss(candidate)
            if new <= current + 1e-12 * max(1.0, abs(current)):
                break
            size /= 2
        beta, current = candidate, new
        if np.max(np.abs(size * step)) < _TOLERANCE:
            break
    return beta


def bt_bootstrap(
    games: Games,
    *,
    rounds: int,
    seed: int,
    with_length: bool = False,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """`rounds` refits on prompts drawn with replacement (as many as there are), one row per resample.

    A model none of whose prompts was drawn has no strength in that resample: NaN. The same `seed` draws the
    same prompts, so the plain and the length-controlled fits see the same resamples.
    """
    rng = np.random.default_rng(seed)
    n_prompts = games.n_prompts
    played = games.wins_a + games.wins_b
    fits = np.empty((rounds, games.n_models + with_length))
    for r in range(rounds):
        drawn = np.bincount(rng.integers(0, n_prompts, size=n_prompts), minlength=n_prompts)
        weights = drawn[games.prompt].astype(float)
        fits[r] = bt_fit(games, with_length=with_length, weights=weights, start=start)
        voted = played * weights > 0
        present = np.bincount(games.a[voted], minlength=games.n_models) + np.bincount(
            games.b[voted], minlength=games.n_models
        )
        fits[r, : games.n_models][present == 0] = np.nan
    return fits


def percentile_interval(samples: np.ndarray) -> tuple[float, float] | None:
    """The 2.5th and 97.5th percentiles of the finite samples; None without any."""
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def groups_of(games: Games) -> np.ndarray:
    """The connected group of each model (0, 1, ...; in the order of the models), through the comparisons:
    strengths compare only within a group."""
    parent = list(range(games.n_models))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(games.a.tolist(), games.b.tolist(), strict=True):
        parent[root(a)] = root(b)
    labels: dict[int, int] = {}
    return np.array([labels.setdefault(root(i), len(labels)) for i in range(games.n_models)], dtype=int)


def length_covariate(length_a: np.ndarray, length_b: np.ndarray) -> tuple[np.ndarray, float]:
    """x = tanh(delta / s), delta = length_a - length_b, as length-controlled AlpacaEval; and s.

    s is the root mean square of delta (its standard deviation about zero, not about its mean: which response is a
    and which b is arbitrary, and swapping them must not change the scale). tanh bounds the covariate, so a few
    very long answers do not decide the slope. All lengths equal: x = 0 and s = 0.
    """
    delta = (length_a - length_b).astype(float)
    scale = float(np.sqrt(np.mean(delta**2))) if len(delta) else 0.0
    return (np.tanh(delta / scale) if scale > 0 else np.zeros_like(delta)), scale
