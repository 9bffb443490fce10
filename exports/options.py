"""The options of one export, checked once for every entry point (command, web form, API, task).

`ExportOptions.from_mapping` is the only validation: it names the bad option, says what it got and what to
use instead. The options are stored on the DatasetExport as `as_dict()` and read back the same way.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import InputError

FORMATS = ("auto", "conversational", "string", "openai")
JUDGES = ("humans", "ai", "both")


@dataclass(frozen=True)
class ExportOptions:
    format: str = "auto"
    """auto: conversational if any prompt of the campaign has more than one message or a system message,
    else string. conversational/string: TRL's two formats (Parquet). openai: OpenAI preference JSONL."""
    judges: str = "humans"
    """Whose judgments count: humans, ai, or both (AI verdicts only for pairs no human judged)."""
    val_fraction: float = 0.1
    """Expected share of prompts in the validation split, in [0, 1)."""
    seed: int = 0
    """Seeds the prompt-hash split: another seed, another (equally stable) split."""
    min_votes: int = 1
    """Pairs with fewer counted (non-skip) votes are dropped."""
    min_agreement: float = 0.0
    """Pairs whose majority holds a smaller share of the counted votes are dropped, in [0, 1]."""
    tokenizer: str = ""
    """Tokenizer (path or name) to measure rows with; needs max_length."""
    max_length: int | None = None
    """Token budget per prompt+response, as DPOConfig.max_length: longer rows would be truncated."""
    drop_overlong: bool = False
    """Drop the rows that would be truncated instead of only counting them."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "ExportOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"Unknown option(s) {', '.join(unknown)}: use {', '.join(sorted(known))}.")
        values = {name: value for name, value in data.items() if value is not None}  # None: the default
        options = cls(
            format=_choice(values, "format", FORMATS, cls.format),
            judges=_choice(values, "judges", JUDGES, cls.judges),
            val_fraction=_number(values, "val_fraction", cls.val_fraction),
            seed=_integer(values, "seed", cls.seed),
            min_votes=_integer(values, "min_votes", cls.min_votes),
            min_agreement=_number(values, "min_agreement", cls.min_agreement),
            tokenizer=_text(values, "tokenizer", cls.tokenizer),
            max_length=_integer(values, "max_length", None),
            drop_overlong=_boolean(values, "drop_overlong", cls.drop_overlong),
        )
        options._check_ranges()
        return options

    def _check_ranges(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise InputError(
                f"val_fraction is {self.val_fraction}: use a share in [0, 1), e.g. 0.1 (0 puts every prompt in train)."
            )
        if self.min_votes < 1:
            raise InputError(f"min_votes is {self.min_votes}: use 1 or more.")
        if not 0 <= self.min_agreement <= 1:
            raise InputError(f"min_agreement is {self.min_agreement}: use a share in [0, 1], e.g. 0.66.")
        if self.max_length is not None and self.max_length < 1:
            raise InputError(f"max_length is {self.max_length}: use a positive number of tokens.")
        if bool(self.tokenizer) != (self.max_length is not None):
            raise InputError(
                "tokenizer and max_length go together: give both to count the rows that would be truncated, or neither."
            )
        if self.drop_overlong and not self.tokenizer:
            raise InputError("drop_overlong needs tokenizer and max_length: they decide which rows are too long.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def checks_length(self) -> bool:
        return self.max_length is not None


def _choice(values: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = values.get(name, default)
    if value not in choices:
        raise InputError(f"{name} is {value!r}: use one of {', '.join(choices)}.")
    return value


def _integer(values: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = values.get(name, default)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InputError(f"{name} is {value!r}: use a whole number.")


def _number(values: Mapping[str, Any], name: str, default: float) -> float:
    value = values.get(name, default)
    if isinstance(value, bool):
        raise InputError(f"{name} is {value!r}: use a number.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} is {value!r}: use a number.") from None


def _text(values: Mapping[str, Any], name: str, default: str) -> str:
    value = values.get(name, default)
    if not isinstance(value, str):
        raise InputError(f"{name} is {value!r}: use a string.")
    return value.strip()


def _boolean(values: Mapping[str, Any], name: str, default: bool) -> bool:
    value = values.get(name, default)
    if isinstance(value, bool):
        return value
    raise InputError(f"{name} is {value!r}: use true or false.")
