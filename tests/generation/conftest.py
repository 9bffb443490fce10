import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from llm.base import PROMPT_CHAT, PROMPT_TEXT, PROMPT_TOO_LONG, GenerationRequest, GenerationResult, request_text

STORY_PROMPTS = [
    "Once upon a time, there was a cat",
    "Once upon a time, there was a dog",
    "Lily went to the park",
    "Tom had a big red ball",
    "One day, a little bird",
    "The sun was shining and",
]


class FakeBackend:
    """A stand-in engine: the text is a function of the request (by default, of its seed), and it counts calls.

    Like a real engine, it says how the model saw each prompt: through its chat template (`chat_template`), or
    as the plain completion text. `finish_for` gives each result's finish reason ("stop" by default).
    `fail_on_call=k` raises `failure` on the k-th generate call (1-based), to simulate a crash or Ctrl-C.
    """

    name = "fake"

    def __init__(
        self,
        *,
        model_name: str = "fake-model",
        text_for: Callable[[GenerationRequest], str] | None = None,
        max_prompt_chars: int = 10_000,
        chat_template: bool = False,
        finish_for: Callable[[GenerationRequest], str] | None = None,
        fail_on_call: int | None = None,
        failure: BaseException | None = None,
    ) -> None:
        self.model_name = model_name
        self.model_revision = "rev-1"
        self.text_for = text_for or (lambda r: f"A story with seed {r.seed}.")
        self.max_prompt_chars = max_prompt_chars
        self.chat_template = chat_template
        self.finish_for = finish_for or (lambda r: "stop")
        self.fail_on_call = fail_on_call
        self.failure = failure or RuntimeError("engine crashed")
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.calls.append(list(requests))
        if self.fail_on_call == len(self.calls):
            raise self.failure
        results = []
        for request in requests:
            prompt_chars = sum(len(m["content"]) for m in request.messages)
            if prompt_chars > self.max_prompt_chars:
                results.append(GenerationResult("", prompt_chars, 0, PROMPT_TOO_LONG))
                continue
            text = self.text_for(request)
            seen = (
                {"prompt_format": PROMPT_CHAT}
                if self.chat_template
                else {"prompt_format": PROMPT_TEXT, "prompt_text": request_text(request)}
            )
            results.append(GenerationResult(text, prompt_chars, len(text.split()), self.finish_for(request), **seen))
        return results

    def close(self) -> None:
        pass


def write_jsonl(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": p} for p in STORY_PROMPTS])
