"""The options of one export, declared once: the command line, the web form and the API schema are derived
from `ExportOptions`, and every entry point (command, web form, API, task) checks its values with it.

The options are stored on the DatasetExport as `as_dict()` and read back with `from_mapping`.
"""

from dataclasses import dataclass

from core.options import Options, option

FORMATS = ("auto", "conversational", "string", "openai")
JUDGES = ("humans", "ai", "both")
RANKING_PAIRS = ("all", "best_worst")


@dataclass(frozen=True)
class ExportOptions(Options):
    format: str = option(
        "auto",
        "conversational or string (TRL Parquet), openai (OpenAI preference JSONL), or auto: from how the responses "
        "were sampled, string for raw text completions (no chat template), conversational for chat-templated and "
        "imported ones; a campaign that mixes them is refused.",
        choices=FORMATS,
    )
    judges: str = option(
        "humans",
        "Whose judgments count: humans, ai, or both (AI verdicts only for pairs no human judged). In a campaign that "
        "audits its AI judge, ai and both count its verdicts only once it passes the judge gate (docs/judge.md).",
        choices=JUDGES,
    )
    val_fraction: float = option(0.1, "Expected share of prompts in the validation split, in [0, 1).")
    seed: int = option(0, "Seeds the prompt-hash split: another seed, another (equally stable) split.")
    min_votes: int = option(1, "Pairs with fewer counted (non-skip) votes are dropped.")
    min_agreement: float = option(
        0.0, "Pairs whose majority holds a smaller share of the counted votes are dropped, in [0, 1]."
    )
    tokenizer: str = option("", "Tokenizer (a directory on the server) to measure rows with; needs max_length.")
    max_length: int | None = option(
        None, "Token budget per prompt+response, as DPOConfig.max_length: count the rows TRL would truncate."
    )
    drop_overlong: bool = option(False, "Drop the rows longer than max_length instead of only counting them.")
    keep_truncated: bool = option(
        False,
        "Keep pairs with a response cut off at its token limit (finish_reason length). By default they are left "
        "out and counted: training would append an end of turn the model never wrote.",
    )

    include_edits: bool = option(
        False,
        "Keep the pairs of an annotator's edit against the response it came from. By default they are left out "
        "and counted: an edit is not the model's own sample, the off-policy text DPO is sensitive to.",
    )
    ranking_pairs: str = option(
        "all",
        "From a ranking of n responses: every pair it orders (all), or only its best against its worst "
        "(best_worst). Pairs judged one by one count either way.",
        choices=RANKING_PAIRS,
    )

    def problems(self) -> list[str]:
        problems = []
        if not 0 <= self.val_fraction < 1:
            problems.append(
                f"`val_fraction` is {self.val_fraction}: use a share in [0, 1), e.g. 0.1 "
                "(0 puts every prompt in train)."
            )
        if self.min_votes < 1:
            problems.append(f"`min_votes` is {self.min_votes}: use 1 or more.")
        if not 0 <= self.min_agreement <= 1:
            problems.append(f"`min_agreement` is {self.min_agreement}: use a share in [0, 1], e.g. 0.66.")
        if self.max_length is not None and self.max_length < 1:
            problems.append(f"`max_length` is {self.max_length}: use a positive number of tokens.")
        if bool(self.tokenizer) != (self.max_length is not None):
            problems.append(
                "`tokenizer` and `max_length` go together: give both to count the rows that would be truncated, "
                "or neither."
            )
        if self.drop_overlong and not self.tokenizer:
            problems.append("`drop_overlong` needs `tokenizer` and `max_length`: they decide which rows are too long.")
        return problems[:1]  # one at a time: the first fix often settles the next

    @property
    def checks_length(self) -> bool:
        return self.max_length is not None
