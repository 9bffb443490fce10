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


class StreamingFakeBackend(FakeBackend):
    """A FakeBackend with a stream of its own, like vLLM's: everything added is in the engine at once, and results
    come back in another order than they went in (last added first, as finishing order varies in a real engine).
    `in_flight_at_first` is how many requests were in when the first result came out; `fail_after=k` raises
    `failure` once k results came out (a crash or Ctrl-C while the engine runs); `closed` counts close() calls."""

    def __init__(self, *, fail_after: int | None = None, **options) -> None:
        super().__init__(**options)
        self.fail_after = fail_after
        self.added: list[GenerationRequest] = []
        self.in_flight_at_first: int | None = None
        self.closed = 0

    def stream(self) -> "FakeStream":
        return FakeStream(self)


class FakeStream:
    def __init__(self, backend: StreamingFakeBackend) -> None:
        self.backend = backend
        self.pending: list[tuple[object, GenerationRequest]] = []
        self.out = 0

    def add(self, key, request: GenerationRequest) -> None:
        self.backend.added.append(request)
        self.pending.append((key, request))

    def results(self):
        while self.pending:
            if self.backend.in_flight_at_first is None:
                self.backend.in_flight_at_first = len(self.pending)
            if self.backend.fail_after == self.out:
                raise self.backend.failure
            key, request = self.pending.pop()
            self.out += 1
            [result] = FakeBackend.generate(self.backend, [request])
            yield key, result

    def close(self) -> None:
        self.backend.closed += 1
        self.pending.clear()
