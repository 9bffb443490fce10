"""The AI judge: ask an LLM which of two responses is better, in both orders, and read its verdict robustly.

Position bias is handled as in MT-Bench and the LLM-as-a-judge literature: every pair is judged twice,
with the responses swapped. The two answers, mapped back to the fixed candidates a/b, must agree;
if they don't, the judge is inconsistent on that pair and the verdict recorded is a tie, not a win.

The verdict is read from the log-probabilities of the first answer token when the backend returns them
(the answer tokens "1", "2", "0"/"tie" must hold most of the probability), otherwise parsed from the text
("1", "[[2]]", "Response 1", "tie", ...). An answer neither way yields is *unparseable*: counted,
reported and stored with its raw text, never guessed. A pair with an unparseable answer gets no verdict
(it is stored as a skip, so the raw outputs are kept and the export ignores it).
"""

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from annotator.models import Comparison, Verdict
from core.errors import InputError

DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("judge_template.txt")
REQUIRED_FIELDS = ("conversation", "response_1", "response_2")
JUDGE_SYSTEM = "You are a careful, impartial evaluator of AI assistant responses."
FIRST, SECOND, TIE = "1", "2", "tie"
ANSWER_TOKENS = {"1": FIRST, "2": SECOND, "0": TIE, "tie": TIE}
# What the default template asks for; on vLLM the judge can only answer one of them (constrained decoding).
JUDGE_ANSWERS = ("1", "2", "0")
MIN_ANSWER_PROBABILITY = 0.5
# Near 50/50: the judge's probabilities for a and for b, averaged over both orders, within this of each other.
UNCERTAIN_MARGIN = 0.2


@dataclass(frozen=True)
class JudgeTemplate:
    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def answers(self) -> tuple[str, ...]:
        """The answers the judge may give, where the engine can hold it to them: the default template's; a
        custom template words its answers its own way, so it is left free (and parsed)."""
        return JUDGE_ANSWERS if self.text == DEFAULT_TEMPLATE_PATH.read_text(encoding="utf-8") else ()

    def render(self, *, guidelines: str, conversation: str, response_1: str, response_2: str) -> str:
        # string.Template ($name) so braces in responses or in a custom template mean nothing.
        return Template(self.text).safe_substitute(
            guidelines=guidelines.strip() or "(none)",
            conversation=conversation,
            response_1=response_1,
            response_2=response_2,
        )


def judge_template_load(path: str | Path | None = None) -> JudgeTemplate:
    """The default judging prompt, or a custom one; a custom one must use $conversation, $response_1 and
    $response_2 ($guidelines is optional)."""
    source = Path(path) if path else DEFAULT_TEMPLATE_PATH
    if not source.is_file():
        raise InputError(f"--template {source}: no such file. Give a text file with the judging prompt.")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--template {source}: not UTF-8 text.") from None
    found = {m.group("named") or m.group("braced") for m in Template.pattern.finditer(text)} - {None}
    missing = [f"${name}" for name in REQUIRED_FIELDS if name not in found]
    if missing:
        raise InputError(
            f"--template {source} lacks {', '.join(missing)}: a judging prompt must show the conversation "
            "($conversation) and both responses ($response_1, $response_2)."
        )
    return JudgeTemplate(name=source.name, text=text)


def conversation_text(messages: list[dict[str, str]], system: str = "") -> str:
    lines = [f"System: {system}"] if system else []
    lines += [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines)


@dataclass(frozen=True)
class OrderReading:
    """One judging call: which candidate was shown as Response 1, what came back, what it means."""

    response_1: str  # "a" or "b": the candidate shown first
    raw: str
    answer: str | None  # FIRST, SECOND, TIE, or None when unparseable
    method: str | None  # "logprobs", "text", or None
    probabilities: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str | None:
        """The answer on the fixed candidates: Verdict.A, Verdict.B, Verdict.TIE, or None."""
        if self.answer is None:
            return None
        if self.answer == TIE:
            return Verdict.TIE
        first_is_a = self.response_1 == "a"
        return Verdict.A if (self.answer == FIRST) == first_is_a else Verdict.B

    def as_dict(self) -> dict[str, Any]:
        return {
            "response_1": self.response_1,
            "raw": self.raw,
            "answer": self.answer,
            "verdict": self.verdict,
            "method": self.method,
            "probabilities": self.probabilities,
        }


_TEXT_PATTERNS = [
    re.compile(r"\[\[\s*(1|2|0|tie)\s*\]\]", re.IGNORECASE),
    re.compile(r"^\W*(?:response\s*)?(1|2|0|tie)\b", re.IGNORECASE),
]


def answer_from_text(text: str) -> str | None:
    for pattern in _TEXT_PATTERNS:
        found = {ANSWER_TOKENS[m.lower()] for m in pattern.findall(text)}
        if len(found) == 1:
            return found.pop()
        if len(found) > 1:
            return None  # "[[1]] ... [[2]]": contradictory, not guessed
    return None


def answer_from_logprobs(first_token: dict[str, float] | None) -> tuple[str | None, dict[str, float]]:
    """The answer whose tokens carry the most probability at the first generated position, if the answer
    tokens together hold at least half of it; with the probability of each answer."""
    if not first_token:
        return None, {}
    mass: dict[str, float] = {FIRST: 0.0, SECOND: 0.0, TIE: 0.0}
    for token, logprob in first_token.items():
        answer = ANSWER_TOKENS.get(token.strip().lower())
        if answer is not None:
            mass[answer] += math.exp(logprob)
    if sum(mass.values()) < MIN_ANSWER_PROBABILITY:
        return None, mass
    return max(mass, key=mass.__getitem__), mass


def read_answer(*, response_1: str, text: str, top_logprobs: list[dict[str, float]] | None) -> OrderReading:
    answer, probabilities = answer_from_logprobs(top_logprobs[0] if top_logprobs else None)
    if answer is not None:
        return OrderReading(response_1, text, answer, "logprobs", probabilities)
    answer = answer_from_text(text)
    return OrderReading(response_1, text, answer, "text" if answer else None, probabilities)


@dataclass(frozen=True)
class PairVerdict:
    verdict: str  # Verdict.A / B / TIE, or Verdict.SKIP when an answer was unparseable
    consistent: bool | None  # None when it could not be checked
    readings: tuple[OrderReading, OrderReading]

    @property
    def unparseable(self) -> int:
        return sum(reading.answer is None for reading in self.readings)

    @property
    def a_share(self) -> float | None:
        """How much of the judge's probability for a side went to a, averaged over both orders (0.5: a coin
        flip); None without log-probabilities for both orders."""
        shares = []
        for reading in self.readings:
            p = reading.probabilities
            p_a, p_b = (p.get(FIRST), p.get(SECOND)) if reading.response_1 == "a" else (p.get(SECOND), p.get(FIRST))
            if p_a is None or p_b is None or p_a + p_b <= 0:
                return None
            shares.append(p_a / (p_a + p_b))
        return sum(shares) / len(shares)

    @property
    def uncertain(self) -> bool:
        """The judge is unsure: its two orders disagree, or its probabilities are near 50/50 between a and b."""
        share = self.a_share
        return self.consistent is False or (share is not None and abs(2 * share - 1) < UNCERTAIN_MARGIN)


def combine_orders(first: OrderReading, second: OrderReading) -> PairVerdict:
    """Both orders agree: that verdict. They disagree: an inconsistent pair, recorded as a tie.
    Either unparseable: no verdict (skip)."""
    if first.verdict is None or second.verdict is None:
        return PairVerdict(Verdict.SKIP, None, (first, second))
    if first.verdict == second.verdict:
        return PairVerdict(first.verdict, True, (first, second))
    return PairVerdict(Verdict.TIE, False, (first, second))


def judge_prompts(comparison: Comparison, template: JudgeTemplate, guidelines: str) -> list[tuple[str, str]]:
    """The two judging prompts of a pair: (candidate shown as Response 1, prompt text), a first then b."""
    prompt = comparison.prompt
    conversation = conversation_text(prompt.messages, prompt.system)
    a, b = comparison.candidate_a.text, comparison.candidate_b.text
    return [
        ("a", template.render(guidelines=guidelines, conversation=conversation, response_1=a, response_2=b)),
        ("b", template.render(guidelines=guidelines, conversation=conversation, response_1=b, response_2=a)),
    ]
