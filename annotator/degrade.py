"""Controlled degradations of a response, for sentinel pairs whose better side is known by construction.

Each function takes a response (and a seeded random generator) and returns a worse version of it, or None when
the response does not lend itself to that degradation (too short, too few sentences, code). A sentinel pair is
the original against its degraded copy: someone reading both with care always prefers the original.

- truncated: cut mid-sentence, at a word boundary between 35% and 65% of the text, with no closing punctuation;
- shuffled: the sentences in another order (at least three sentences, and no code, whose lines order matters);
- other_prompt: the response to a different prompt of the campaign (picked by the caller, see sentinels.py).
"""

import random
import re

TRUNCATED, SHUFFLED, OTHER_PROMPT = "truncated", "shuffled", "other_prompt"
KINDS = (TRUNCATED, SHUFFLED, OTHER_PROMPT)

MIN_CHARS = 80  # shorter responses make sentinels too easy to spot, or too hard to degrade visibly
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def sentences(text: str) -> list[str]:
    """The text split after each ., ! or ? followed by white space (good enough for prose; code is refused)."""
    return [part for part in _SENTENCE_END.split(text.strip()) if part]


def truncated(text: str, rng: random.Random) -> str | None:
    """The text cut off mid-sentence: at a space between 35% and 65% of it, inside a sentence, trailing
    punctuation removed, so that it visibly stops in the middle of a thought."""
    text = text.strip()
    if len(text) < MIN_CHARS:
        return None
    low, high = int(len(text) * 0.35), int(len(text) * 0.65)
    spaces = [i for i in range(low, high) if text[i] == " " and text[i - 1] not in ".!?:\n"]
    if not spaces:
        return None
    cut = text[: rng.choice(spaces)].rstrip(" ,;:-")
    return cut if cut and cut != text else None


def shuffled(text: str, rng: random.Random) -> str | None:
    """The text's sentences in another order (the first sentence never stays first), joined by spaces."""
    if "```" in text or len(text.strip()) < MIN_CHARS:
        return None
    parts = sentences(text)
    if len(parts) < 3:
        return None
    for _ in range(20):
        order = parts[:]
        rng.shuffle(order)
        if order[0] != parts[0]:
            return " ".join(order)
    return None
