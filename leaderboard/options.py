"""The options of a leaderboard, declared once: the page's form and the API's query parameters are checked by
`LeaderboardOptions`."""

from dataclasses import dataclass

from core.options import Options, option
from exports.options import JUDGES

MAX_BOOTSTRAP = 2000  # the page computes while it answers: 2,000 refits of each fit is the most it waits for


@dataclass(frozen=True)
class LeaderboardOptions(Options):
    judges: str = option(
        "humans",
        "Whose votes count: humans, ai, or both (the AI judge's votes only for pairs no human judged), as in exports.",
        choices=JUDGES,
    )
    bootstrap: int = option(
        200, f"Resamples of the prompts for the 95% intervals, 0 to {MAX_BOOTSTRAP} (0: no intervals)."
    )
    seed: int = option(0, "Seeds the bootstrap: the same seed and votes give the same intervals.")

    def problems(self) -> list[str]:
        problems = []
        if not 0 <= self.bootstrap <= MAX_BOOTSTRAP:
            problems.append(
                f"`bootstrap` is {self.bootstrap}: use 0 (no intervals) to {MAX_BOOTSTRAP} resamples, e.g. 200."
            )
        if self.seed < 0:
            problems.append(f"`seed` is {self.seed}: use 0 or a positive whole number.")
        return problems
