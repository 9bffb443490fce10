"""What to sample for one prompt and what to compare: slots, their seeds, duplicate detection, pairing.

A prompt gets `n` slots. Slot i samples with the i-th sampling setting (or the only one given); with a
second model, odd slots go to model B, so n=2 is one answer from each. Each slot's seed is derived from
the run's seed, the prompt's content hash, the slot and the attempt, so it is distinct per candidate,
independent of the order of the prompts file, and the same when a run is resumed.
"""

import hashlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.limits import text_check
from llm.base import Sampling

SEED_BITS = 31  # seeds fit every engine's seed argument (some take a signed 32-bit integer)
PAIRS_MODES = ("all", "random")


@dataclass(frozen=True)
class Slot:
    index: int
    side: str  # "a": the model; "b": the second model
    sampling: Sampling


def slots_plan(
    *,
    n: int,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    max_tokens: int,
    two_models: bool,
    logprobs: int = 0,
) -> list[Slot]:
    """The n slots of every prompt. A setting list holds one value (for every slot) or one per slot."""

    def pick(values: Sequence[float], index: int) -> float:
        return values[index] if len(values) > 1 else values[0]

    return [
        Slot(
            index=i,
            side="b" if two_models and i % 2 == 1 else "a",
            sampling=Sampling(
                temperature=pick(temperatures, i), top_p=pick(top_ps, i), max_tokens=max_tokens, logprobs=logprobs
            ),
        )
        for i in range(n)
    ]


def derive_seed(base_seed: int, *parts: object) -> int:
    key = ":".join(str(p) for p in (base_seed, *parts))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % (1 << SEED_BITS)


def slot_seed(*, base_seed: int, content_hash: str, slot: int, attempt: int = 0) -> int:
    """Attempt 0 is the first sample; a resample of a duplicate or empty response uses attempt 1, 2, ..."""
    return derive_seed(base_seed, content_hash, slot, attempt)


def text_key(text: str) -> str:
    """Responses that differ only in whitespace count as the same response."""
    return " ".join(text.split())


def text_unstorable(text: str) -> str:
    """Why the database could not store a response as it is (a NUL character, a lone surrogate), or "". Such a
    response is sampled again like an empty one, never stored altered."""
    try:
        text_check(text, what="the response")
    except ValueError as error:
        return str(error)
    return ""


def slots_to_resample(texts: Sequence[str]) -> list[int]:
    """Slots whose response is empty, the same as an earlier slot's (the earlier one stays), or not storable."""
    seen: set[str] = set()
    bad = []
    for index, text in enumerate(texts):
        key = text_key(text)
        if not key or key in seen or text_unstorable(text):
            bad.append(index)
        else:
            seen.add(key)
    return bad


def pairs_choose(
    *, slots: Sequence[Slot], two_models: bool = False, mode: str = "all", per_prompt: int = 1, seed: int = 0
) -> list[tuple[int, int]]:
    """Which (slot, slot) pairs become comparisons, among the slots given (those with a usable response).

    With one model, any two slots pair up; with two, only an answer of model A with one of model B.
    `mode="random"` keeps `per_prompt` of those pairs, drawn with `seed`.
    """
    pairs = [
        (a.index, b.index)
        for a, b in itertools.combinations(sorted(slots, key=lambda s: s.index), 2)
        if not two_models or a.side != b.side
    ]
    if mode == "random" and len(pairs) > per_prompt:
        pairs = sorted(random.Random(seed).sample(pairs, per_prompt))
    return pairs
