"""Stand-ins for a round's engines: generation fakes whose texts differ per seed, and a judge that answers by a
visible rule, through the real judging prompt (both orders, answers read by quality.judging)."""

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from llm.base import EngineOptions, GenerationRequest, GenerationResult
from tests.generation.conftest import FakeBackend

JUDGE = "scripted-judge"
RESPONSES = re.compile(r"\[Response 1\]\n(?P<one>.*)\n\n\[Response 2\]\n(?P<two>.*)\n\nWhich response", re.DOTALL)


def prefers_park_then_longer(text: str) -> tuple[bool, int]:
    return "park" in text, len(text)


class ScriptedJudge:
    """An AI judge that prefers the response that ranks higher by `prefer` (ties: "0"), read off the default
    judging prompt. It answers the way an instruct model does, with one character."""

    name = "scripted"

    def __init__(self, prefer: Callable[[str], object] = prefers_park_then_longer, model_name: str = JUDGE) -> None:
        self.prefer = prefer
        self.model_name = model_name
        self.model_revision = "rules-1"
        self.calls = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.calls += 1
        results = []
        for request in requests:
            match = RESPONSES.search(request.messages[-1]["content"])
            assert match, "the default judging template shows [Response 1] and [Response 2]"
            one, two = self.prefer(match["one"]), self.prefer(match["two"])
            answer = "1" if one > two else "2" if two > one else "0"
            results.append(GenerationResult(answer, 100, 1, "stop"))
        return results

    def close(self) -> None:
        pass


def story_text(request: GenerationRequest, model: str) -> str:
    """A different story per seed (so no pair is a duplicate), a park in one of three."""
    seed = request.seed or 0
    place = "in the park" if seed % 3 == 0 else "at home"
    return f"{Path(model).name} tells story {seed}: a cat played {place}." + " More." * (seed % 5)


class FakeEngines:
    """`Engines` for a round: a FakeBackend per model (texts from story_text), the scripted judge for JUDGE.
    Records what was loaded, with which engine options; `fail` makes the model of that name crash."""

    def __init__(self, judge: ScriptedJudge | None = None, fail: dict[str, BaseException] | None = None) -> None:
        self.judge = judge or ScriptedJudge()
        self.fail = fail or {}
        self.loaded: list[tuple[str, EngineOptions]] = []

    def __call__(self, model: str, options: EngineOptions) -> object:
        self.loaded.append((model, options))
        if model == self.judge.model_name:
            return self.judge
        return FakeBackend(
            model_name=model,
            text_for=lambda request: story_text(request, model),
            fail_on_call=1 if model in self.fail else None,
            failure=self.fail.get(model),
        )

    @property
    def models(self) -> list[str]:
        return [model for model, _ in self.loaded]
