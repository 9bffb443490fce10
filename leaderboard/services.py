"""The leaderboard of a campaign (or of every campaign): each model that wrote a response on either side of a
comparison, ranked by its Bradley-Terry strength, with bootstrap intervals, the votes behind it, the pairwise
win rates and a length-controlled strength. Computed on request from the counted votes; nothing is stored.

What counts (docs/leaderboard.md): the votes of the selected judges, a tie or "both bad" half a win for each
side (`PairVotes.won_by`), skips never. Pairs between two responses of one model, and pairs with a response
whose model is not recorded, tell nothing about models: they are left out of the fit and counted.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotator.models import Campaign
from leaderboard.bradley_terry import (
    ELO_MEAN,
    ELO_PER_LOGIT,
    Games,
    bt_bootstrap,
    bt_fit,
    groups_of,
    length_covariate,
    percentile_interval,
    sigmoid,
)
from leaderboard.options import LeaderboardOptions
from leaderboard.selectors import PairVotes, leaderboard_pairs, model_labels


@dataclass
class _Record:
    """One model's counted votes, from its own side."""

    votes: int = 0
    wins: int = 0
    losses: int = 0
    ties: int = 0  # ties and "both bad"
    won: float = 0.0  # wins, and half of each tie
    opponents: set[str] = field(default_factory=set)

    def add(self, pair: PairVotes, *, side: str) -> None:
        wins, losses, opponent = (pair.a, pair.b, pair.model_b) if side == "a" else (pair.b, pair.a, pair.model_a)
        self.votes += pair.votes
        self.wins, self.losses, self.ties = self.wins + wins, self.losses + losses, self.ties + pair.ties
        self.won += pair.won_by(side)
        self.opponents.add(opponent)


def _elo(theta: float) -> float:
    return ELO_MEAN + ELO_PER_LOGIT * theta


def _elo_interval(boot: np.ndarray | None, i: int) -> list[float] | None:
    """Model i's 95% interval on the Elo scale from the bootstrap fits; None without a bootstrap."""
    interval = None if boot is None else percentile_interval(ELO_MEAN + ELO_PER_LOGIT * boot[:, i])
    return None if interval is None else list(interval)


def _games(pairs: list[PairVotes], models: list[str]) -> tuple[Games, float]:
    index = {name: i for i, name in enumerate(models)}
    prompts: dict[str, int] = {}
    length, scale = length_covariate(np.array([p.length_a for p in pairs]), np.array([p.length_b for p in pairs]))
    games = Games(
        a=np.array([index[p.model_a] for p in pairs], dtype=int),
        b=np.array([index[p.model_b] for p in pairs], dtype=int),
        wins_a=np.array([p.won_by("a") for p in pairs]),
        wins_b=np.array([p.won_by("b") for p in pairs]),
        length=length,
        prompt=np.array([prompts.setdefault(p.prompt, len(prompts)) for p in pairs], dtype=int),
        n_models=len(models),
    )
    return games, scale


def _left_out(pairs: list[PairVotes]) -> dict[str, int]:
    return {"pairs": len(pairs), "votes": sum(p.votes for p in pairs)}


def leaderboard_build(*, campaign: Campaign | None, options: LeaderboardOptions) -> dict[str, Any]:
    """The leaderboard as plain data (what the page shows and the API returns)."""
    pairs = leaderboard_pairs(campaign=campaign, judges=options.judges)
    unnamed = [p for p in pairs if not p.model_a or not p.model_b]
    same_model = [p for p in pairs if p.model_a and p.model_a == p.model_b]
    counted = [p for p in pairs if p.model_a and p.model_b and p.model_a != p.model_b and p.votes]
    appearing = sorted({name for p in pairs for name in (p.model_a, p.model_b) if name})

    records = {name: _Record() for name in appearing}
    for p in counted:
        records[p.model_a].add(p, side="a")
        records[p.model_b].add(p, side="b")
    rated = {name: i for i, name in enumerate(sorted({name for p in counted for name in (p.model_a, p.model_b)}))}
    fit = _fit(counted, list(rated), options) if counted else None
    labels = model_labels(names=appearing)
    rows = [_row(name, labels.get(name, ""), records[name], fit, rated.get(name)) for name in appearing]
    # Strongest first; the models without a counted vote last, by name.
    rows.sort(key=lambda row: (row["strength"] is None, -(row["strength"] or 0.0), row["model"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank if row["strength"] is not None else None

    return {
        "campaign": None if campaign is None else {"id": campaign.pk, "name": campaign.name},
        "options": options.as_dict(),
        "totals": {
            "pairs": len(pairs),
            "pairs_counted": len(counted),
            "votes": sum(p.votes for p in counted),
            "decisive": sum(p.a + p.b for p in counted),
            "ties": sum(p.ties for p in counted),
            "prompts": fit["games"].n_prompts if fit else 0,
            "groups": int(fit["groups"].max()) + 1 if fit else 0,
            "left_out": {"same_model": _left_out(same_model), "unnamed": _left_out(unnamed)},
        },
        "models": rows,
        "matrix": _matrix([row for row in rows if row["strength"] is not None], counted, fit, rated),
        "length": fit and fit["length"],
    }


def _row(name: str, label: str, record: _Record, fit: dict[str, Any] | None, i: int | None) -> dict[str, Any]:
    """One model's line: its strengths and intervals (None without a counted vote) and its votes."""
    rated = fit is not None and i is not None
    return {
        "model": name,
        "label": label,
        "strength": _elo(fit["theta"][i]) if rated else None,
        "ci95": _elo_interval(fit["boot"], i) if rated else None,
        "strength_lc": _elo(fit["theta_lc"][i]) if rated else None,
        "ci95_lc": _elo_interval(fit["boot_lc"], i) if rated else None,
        "group": int(fit["groups"][i]) + 1 if rated else None,
        "votes": record.votes,
        "decisive": record.wins + record.losses,
        "wins": record.wins,
        "ties": record.ties,
        "losses": record.losses,
        "win_rate": record.won / record.votes if record.votes else None,
        "opponents": len(record.opponents),
    }


def _fit(counted: list[PairVotes], rated: list[str], options: LeaderboardOptions) -> dict[str, Any]:
    games, scale = _games(counted, rated)
    theta = bt_fit(games)
    beta_lc = bt_fit(games, with_length=True)
    boot = boot_lc = None
    if options.bootstrap:
        boot = bt_bootstrap(games, rounds=options.bootstrap, seed=options.seed, start=theta)
        boot_lc = bt_bootstrap(games, rounds=options.bootstrap, seed=options.seed, with_length=True, start=beta_lc)
    gamma = float(beta_lc[-1])
    gamma_interval = None if boot_lc is None else percentile_interval(boot_lc[:, -1])
    # The chance that of two equally strong models the one whose answer is one scale (s characters) longer wins.
    longer = None if gamma_interval is None else [float(sigmoid(g * np.tanh(1.0))) for g in gamma_interval]
    return {
        "games": games,
        "theta": theta.tolist(),
        "theta_lc": beta_lc[:-1].tolist(),
        "boot": boot,
        "boot_lc": boot_lc,
        "groups": groups_of(games),
        "length": {
            "unit": "characters",
            "scale": scale,
            "coefficient": gamma,
            "ci95": None if gamma_interval is None else list(gamma_interval),
            "longer_wins": float(sigmoid(gamma * np.tanh(1.0))),
            "longer_wins_ci95": longer,
        },
    }


def _matrix(
    ranked: list[dict[str, Any]], counted: list[PairVotes], fit: dict[str, Any] | None, rated: dict[str, int]
) -> list[dict[str, Any]]:
    """Row model against column model: its observed win rate over their votes (ties half), and the chance that it
    wins by the fits (plain, and at equal length); None on the diagonal. Across groups there is no fitted chance."""
    won: dict[tuple[str, str], float] = {}
    votes: dict[tuple[str, str], int] = {}
    for p in counted:
        for model, other, side in ((p.model_a, p.model_b, "a"), (p.model_b, p.model_a, "b")):
            won[(model, other)] = won.get((model, other), 0.0) + p.won_by(side)
            votes[(model, other)] = votes.get((model, other), 0) + p.votes
    order = [row["model"] for row in ranked]
    rows = []
    for row in ranked:
        model = row["model"]
        i = rated[model]
        cells: list[dict[str, Any] | None] = []
        for other in order:
            j = rated[other]
            if i == j:
                cells.append(None)
                continue
            n = votes.get((model, other), 0)
            together = fit is not None and fit["groups"][i] == fit["groups"][j]
            cells.append(
                {
                    "opponent": other,
                    "votes": n,
                    "win_rate": won[(model, other)] / n if n else None,
                    "expected": _chance(fit["theta"], i, j) if together else None,
                    "expected_lc": _chance(fit["theta_lc"], i, j) if together else None,
                }
            )
        rows.append({"model": model, "label": row["label"], "cells": cells})
    return rows


def _chance(theta: list[float], i: int, j: int) -> float:
    return float(sigmoid(theta[i] - theta[j]))
