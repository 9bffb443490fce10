"""The fits themselves, on small fixed examples whose answers are known: in closed form, by hand, or by another
algorithm (Zermelo's, the classical fixed point for Bradley-Terry)."""

import math

import numpy as np
import pytest

from leaderboard.bradley_terry import (
    RIDGE,
    Games,
    bt_bootstrap,
    bt_fit,
    groups_of,
    length_covariate,
    percentile_interval,
    sigmoid,
)

NO_RIDGE = 1e-10  # as good as the unpenalised maximum likelihood, where that is finite


def games(rows: list[tuple], *, n_models: int, length: list[float] | None = None) -> Games:
    """rows: (model a, model b, votes for a, votes for b[, prompt]); each row its own prompt unless given."""
    return Games(
        a=np.array([r[0] for r in rows]),
        b=np.array([r[1] for r in rows]),
        wins_a=np.array([r[2] for r in rows], dtype=float),
        wins_b=np.array([r[3] for r in rows], dtype=float),
        length=np.zeros(len(rows)) if length is None else np.array(length, dtype=float),
        prompt=np.array([r[4] if len(r) > 4 else i for i, r in enumerate(rows)]),
        n_models=n_models,
    )


def zermelo(wins: np.ndarray) -> np.ndarray:
    """Zermelo's (Hunter's MM) fixed point p_i <- W_i / sum_j n_ij / (p_i + p_j), as log-strengths of mean 0.
    `wins[i, j]`: how often i beat j (ties as halves)."""
    games_between = wins + wins.T
    p = np.ones(len(wins))
    for _ in range(100_000):
        new = wins.sum(axis=1) / (games_between / (p[:, None] + p[None, :])).sum(axis=1)
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < 1e-14:
            break
        p = new
    return np.log(p)


def test_two_models_strength_difference_is_the_log_of_wins_over_losses():
    # 7 wins, 2 losses and 2 ties (half each): 8 to 3.
    theta = bt_fit(games([(0, 1, 7 + 1, 2 + 1)], n_models=2), ridge=NO_RIDGE)
    assert theta[0] - theta[1] == pytest.approx(math.log(8 / 3), abs=1e-8)
    assert theta.sum() == pytest.approx(0, abs=1e-12)


def test_votes_in_bradley_terry_odds_give_back_those_odds():
    # Strengths 4 : 2 : 1. A beats B 2 of 3, B beats C 2 of 3, A beats C 4 of 5: each pair's share is exactly
    # its Bradley-Terry probability, so the likelihood equations hold at log 4, log 2, log 1 (centred).
    theta = bt_fit(games([(0, 1, 2, 1), (1, 2, 2, 1), (0, 2, 4, 1)], n_models=3), ridge=NO_RIDGE)
    assert theta == pytest.approx(np.log([4, 2, 1]) - np.log([4, 2, 1]).mean(), abs=1e-8)


def test_the_fit_agrees_with_zermelos_algorithm_on_an_irregular_example():
    rows = [(0, 1, 5, 3), (1, 2, 4, 4.5), (0, 2, 6, 1), (2, 3, 2, 5), (1, 3, 1.5, 2), (3, 0, 0.5, 3)]
    wins = np.zeros((4, 4))
    for a, b, won, lost in rows:
        wins[a, b] += won
        wins[b, a] += lost
    theta = bt_fit(games(rows, n_models=4), ridge=NO_RIDGE)
    assert theta == pytest.approx(zermelo(wins), abs=1e-7)


def test_with_the_default_ridge_the_fit_solves_its_penalised_likelihood_equations():
    # At the optimum, each model's votes won = the wins the fit expects + ridge * theta (and the thetas sum to 0).
    rows = [(0, 1, 5, 3), (1, 2, 4, 0), (0, 2, 6, 0)]
    theta = bt_fit(games(rows, n_models=3))
    expected = np.zeros(3)
    won = np.zeros(3)
    for a, b, wa, wb in rows:
        p = sigmoid(theta[a] - theta[b])
        expected[a] += (wa + wb) * p
        expected[b] += (wa + wb) * (1 - p)
        won[a] += wa
        won[b] += wb
    assert won - expected == pytest.approx(RIDGE * theta, abs=1e-9)
    assert theta.sum() == pytest.approx(0, abs=1e-12)


def test_a_model_that_never_lost_gets_a_finite_strength_above_the_others():
    theta = bt_fit(games([(0, 1, 10, 0), (1, 2, 3, 3)], n_models=3))
    assert np.all(np.isfinite(theta))
    assert theta[0] > theta[1] + 3
    assert theta[1] == pytest.approx(theta[2], abs=0.02)  # their 3 to 3


def test_the_length_covariate_takes_the_bias_and_leaves_equal_models_equal():
    # Model 0 wrote the longer answer in 8 of 10 prompts; the longer answer won 9 of 10 votes whichever model
    # wrote it. Raw: model 0 looks stronger. With the length covariate: logit P(0 wins) = d + gamma * x, with
    # x = +-tanh(1) (the differences are +-100 characters: s = 100), so d = 0, gamma * tanh(1) = logit 0.9.
    rows = [(0, 1, 9, 1)] * 8 + [(0, 1, 1, 9)] * 2
    x, scale = length_covariate(np.array([300] * 8 + [200] * 2), np.array([200] * 8 + [300] * 2))
    assert scale == 100 and x == pytest.approx([math.tanh(1)] * 8 + [-math.tanh(1)] * 2)
    data = games(rows, n_models=2, length=x.tolist())
    raw = bt_fit(data, ridge=NO_RIDGE)
    controlled = bt_fit(data, with_length=True, ridge=NO_RIDGE, ridge_length=NO_RIDGE)
    assert raw[0] - raw[1] == pytest.approx(math.log(74 / 26))  # 8 * 9 + 2 * 1 = 74 of 100 votes
    assert controlled[0] - controlled[1] == pytest.approx(0, abs=1e-8)
    assert controlled[2] * math.tanh(1) == pytest.approx(math.log(9), abs=1e-8)


def test_when_the_longer_answer_always_wins_length_takes_all_the_credit():
    # The same pairs, every vote for the longer answer: length alone explains them all. The models come out
    # level (with equal penalties on both, half of model 0's raw lead, log 2, would stay).
    rows = [(0, 1, 10, 0)] * 8 + [(0, 1, 0, 10)] * 2
    data = games(rows, n_models=2, length=[math.tanh(1)] * 8 + [-math.tanh(1)] * 2)
    controlled = bt_fit(data, with_length=True)
    assert abs(controlled[0] - controlled[1]) < 0.01
    assert sigmoid(controlled[2] * math.tanh(1)) > 0.999
    equal_penalties = bt_fit(data, with_length=True, ridge_length=RIDGE)
    assert equal_penalties[0] - equal_penalties[1] == pytest.approx(math.log(2), abs=0.1)


def test_equal_lengths_give_no_covariate():
    x, scale = length_covariate(np.array([5, 7]), np.array([5, 7]))
    assert scale == 0 and list(x) == [0, 0]


def test_the_bootstrap_is_seeded_resamples_prompts_and_brackets_the_estimate():
    rows = [(0, 1, 3, 1, p) for p in range(6)] + [(1, 2, 2, 2, p) for p in range(6)] + [(0, 2, 1, 0, 6)]
    data = games(rows, n_models=3)
    theta = bt_fit(data)
    first = bt_bootstrap(data, rounds=60, seed=7, start=theta)
    assert np.array_equal(first, bt_bootstrap(data, rounds=60, seed=7, start=theta), equal_nan=True)
    assert not np.array_equal(first, bt_bootstrap(data, rounds=60, seed=8, start=theta), equal_nan=True)
    for i in range(3):
        low, high = percentile_interval(first[:, i])
        assert low <= theta[i] <= high and low < high
    # Every model plays on six of the seven prompts (or on all but one): each resample has votes for each.
    assert not np.isnan(first).any()


def test_a_model_absent_from_a_resample_has_no_strength_in_it():
    # Model 2 plays on one prompt of three (about (2/3)^3 of the resamples leave it out), model 0 on the other
    # two, model 1 on all three.
    data = games([(0, 1, 2, 1), (0, 1, 1, 2), (1, 2, 1, 1)], n_models=3)
    fits = bt_bootstrap(data, rounds=100, seed=0)
    assert 10 < np.isnan(fits[:, 2]).sum() < 60
    assert 0 < np.isnan(fits[:, 0]).sum() < 15
    assert not np.isnan(fits[:, 1]).any()
    assert percentile_interval(np.full(3, np.nan)) is None


def test_models_never_compared_through_each_other_form_separate_groups():
    assert groups_of(games([(0, 1, 1, 0), (2, 3, 1, 1), (1, 4, 0, 1)], n_models=5)).tolist() == [0, 0, 1, 1, 0]
