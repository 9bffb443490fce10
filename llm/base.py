"""The interface every engine implements: requests, results, engine options, and `backend_load` to start one.

A request is a conversation (messages + optional system) or a raw completion text, with its sampling
settings and seed; a result is the text, token counts, why it stopped and, on request, the top
log-probabilities of each generated token. Nothing here knows about campaigns or the database, so other
features (the AI judge asking "which response is better") use the same engines for their own requests.

Conversations get the model's chat template when it has one; a model without one (a base model such as
the tiny test model) gets a plain completion prompt: the system message and the turns' texts joined by
blank lines. Every result says which of the two the model saw (`prompt_format`: PROMPT_CHAT, or PROMPT_TEXT
with the exact `prompt_text` it continued), because training must show the model the same context again.
A prompt that leaves no room in the model's context is not truncated: its result has
`finish_reason == PROMPT_TOO_LONG` and no text.
"""

import os
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from core.conversations import Message, conversation_with_system
from core.errors import InputError, StudioError
from core.options import OptionError, Options, option

PROMPT_TOO_LONG = "prompt_too_long"
REQUEST_FAILED = "request_failed"  # one request of a batch failed (a server's error); the others stand
BACKENDS = ("vllm", "openai", "transformers")
# How the model saw a request: through its chat template (the engine rendered the conversation), or as a raw
# text it continued right after its last character (PROMPT_TEXT; the result keeps that text).
PROMPT_CHAT = "chat"
PROMPT_TEXT = "text"


class BackendError(StudioError):
    """The engine or server refused or failed a request; the message says which and why."""


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one request, stored as they are with every candidate."""

    temperature: float = 1.0  # 0 is greedy decoding
    top_p: float = 1.0
    max_tokens: int = 256  # new tokens at most; fewer when the context fills up first
    logprobs: int = 0  # return the top-k log-probabilities of every generated token (0: none)
    # The answer must be one of these texts, where the engine can enforce it (vLLM's structured outputs);
    # other engines sample freely and the caller parses what comes back.
    choices: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        params = asdict(self)
        for unset in ("logprobs", "choices"):
            if not params[unset]:
                del params[unset]
        if "choices" in params:
            params["choices"] = list(params["choices"])
        return params


@dataclass(frozen=True)
class GenerationRequest:
    """A conversation to answer, or (`prompt`) a raw text to continue as it is, with no chat template."""

    messages: Sequence[Message] = ()
    system: str = ""
    prompt: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    seed: int | None = None

    def __post_init__(self) -> None:
        if (self.prompt is None) == (not self.messages):
            raise ValueError("A GenerationRequest takes either messages or a raw prompt, not both or neither.")


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop", "length", PROMPT_TOO_LONG or REQUEST_FAILED
    top_logprobs: list[dict[str, float]] | None = None  # per generated token: {token text: log-probability}
    error: str = ""  # REQUEST_FAILED: why
    prompt_format: str = ""  # PROMPT_CHAT or PROMPT_TEXT: how the model saw the prompt ("" when nothing was sent)
    prompt_text: str = ""  # PROMPT_TEXT: the exact text the model continued


def failed_result(error: str) -> GenerationResult:
    return GenerationResult(text="", prompt_tokens=0, completion_tokens=0, finish_reason=REQUEST_FAILED, error=error)


def results_raise_failed(results: Sequence[GenerationResult], *, model: str) -> None:
    """For callers that need every answer of a batch: a BackendError naming the first failure, if any."""
    failed = [r for r in results if r.finish_reason == REQUEST_FAILED]
    if failed:
        raise BackendError(
            f"{len(failed)} of {len(results)} request(s) for {model!r} failed; the first: {failed[0].error}"
        )


@dataclass(frozen=True)
class EngineOptions(Options):
    """How to start the engine. None means: the engine's default on a GPU, the measured setting on a CPU."""

    backend: str = option(
        "vllm", "The engine: vllm, openai (an OpenAI-compatible server) or transformers.", choices=BACKENDS
    )
    revision: str = option("", "Hub revision of the model (recorded as provenance).")
    dtype: str | None = option(None, "Weights' dtype (default: the engine's on a GPU, float32 on a CPU).")
    max_model_len: int | None = option(None, "Context length the engine reserves for (default: the model's).")
    tensor_parallel_size: int = option(1, "GPUs one vLLM engine spans.")
    gpu_memory_utilization: float | None = option(None, "Share of GPU memory vLLM may take (default 0.9).")
    kv_cache_mib: int | None = option(None, "vLLM KV-cache size in MiB (CPU default 64).")
    threads: int | None = option(None, "CPU threads for torch (sets OMP_NUM_THREADS).")
    base_url: str = option("", "openai: the server, e.g. http://127.0.0.1:8000/v1.", label="Server URL")
    concurrency: int = option(8, "openai: requests in flight at once.")
    openai_api: str = option(
        "auto",
        "openai: chat, completions, or auto (chat unless the model has no chat template).",
        choices=("auto", "chat", "completions"),
    )
    request_timeout: float = option(600.0, "openai: seconds per request.")

    @property
    def kv_cache_bytes(self) -> int | None:
        return self.kv_cache_mib << 20 if self.kv_cache_mib else None

    def problems(self) -> list[str]:
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"`backend` {self.backend!r}: use one of {', '.join(BACKENDS)}.")
        for name in ("tensor_parallel_size", "concurrency", "max_model_len", "kv_cache_mib", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"`{name}` is {value}: it must be at least 1.")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            problems.append(f"`gpu_memory_utilization` is {self.gpu_memory_utilization}: use a share in (0, 1].")
        return problems

    def server_check(self) -> None:
        """For callers that do not hold the server's key (a page, the API, a job they queued): the openai backend
        sends OPENAI_API_KEY only to a server in settings.OPENAI_BASE_URLS; any other `base_url` is an
        OptionError naming the option and the setting. The command line, whose user holds the key, skips this."""
        from llm.openai_engine import base_url_problems

        problems = base_url_problems(self.base_url) if self.backend == "openai" and self.base_url else []
        if problems:
            raise OptionError(problems, options=type(self))


class Backend(Protocol):
    name: str
    model_name: str
    model_revision: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Results in the order of the requests."""
        ...

    def close(self) -> None: ...

    # An engine that schedules requests itself (vLLM) may also offer `stream() -> ResultStream`: requests
    # go in at any time and results come out as they finish (`results_stream` uses it when it is there).


class ResultStream(Protocol):
    """Requests in, results out as each finishes: `add` (key, request) at any time, even while iterating
    `results()`, which yields (key, result) until nothing added is left. `close()` drops what is unfinished."""

    def add(self, key: Hashable, request: GenerationRequest) -> None: ...

    def results(self) -> Iterator[tuple[Hashable, GenerationResult]]: ...

    def close(self) -> None: ...


class BatchedStream:
    """The stream of an engine without one of its own: `generate()` on up to `chunk` requests at a time, in the
    order they were added."""

    def __init__(self, backend: Backend, *, chunk: int) -> None:
        self.backend = backend
        self.chunk = chunk
        self.pending: deque[tuple[Hashable, GenerationRequest]] = deque()

    def add(self, key: Hashable, request: GenerationRequest) -> None:
        self.pending.append((key, request))

    def results(self) -> Iterator[tuple[Hashable, GenerationResult]]:
        while self.pending:
            batch = [self.pending.popleft() for _ in range(min(self.chunk, len(self.pending)))]
            results = self.backend.generate([request for _, request in batch])
            yield from zip((key for key, _ in batch), results, strict=True)

    def close(self) -> None:
        self.pending.clear()


def results_stream(backend: Backend, *, chunk: int) -> ResultStream:
    """The backend's own stream when it has one (vLLM: every request added goes to its scheduler at once),
    else `generate()` on `chunk` requests at a time."""
    stream = getattr(backend, "stream", None)
    return stream() if stream is not None else BatchedStream(backend, chunk=chunk)


def completion_text(messages: Sequence[Message], system: str = "") -> str:
    """The plain prompt for a model without a chat template: the texts joined by blank lines."""
    return "\n\n".join([system, *(m["content"] for m in messages)] if system else [m["content"] for m in messages])


def request_text(request: GenerationRequest) -> str:
    """The text a request sends when no chat template renders it: its raw prompt, or its plain completion prompt."""
    return request.prompt if request.prompt is not None else completion_text(request.messages, request.system)


def too_long_result(prompt_tokens: int) -> GenerationResult:
    return GenerationResult(text="", prompt_tokens=prompt_tokens, completion_tokens=0, finish_reason=PROMPT_TOO_LONG)


class Tokenized:
    """Prompt token ids as the engine will see them: the chat template when there is one, else plain text."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))

    def uses_chat(self, request: GenerationRequest) -> bool:
        return request.prompt is None and self.has_chat_template

    def prompt_seen(self, request: GenerationRequest) -> dict[str, str]:
        """How the model sees the request, for its result: `prompt_format`, and `prompt_text` for a raw text."""
        if self.uses_chat(request):
            return {"prompt_format": PROMPT_CHAT}
        return {"prompt_format": PROMPT_TEXT, "prompt_text": request_text(request)}

    def ids(self, request: GenerationRequest) -> list[int]:
        if self.uses_chat(request):
            text = self.tokenizer.apply_chat_template(
                conversation_with_system(list(request.messages), request.system),
                tokenize=False,
                add_generation_prompt=True,
            )
            # The template writes the special tokens (BOS...) itself.
            return self.tokenizer.encode(text, add_special_tokens=False)
        return self.tokenizer.encode(request_text(request))


def top_logprobs_by_text(position: dict[Any, float], decode: Any = None) -> dict[str, float]:
    """{token: logprob} keyed by token text; two ids that decode alike keep the likelier one."""
    out: dict[str, float] = {}
    for token, logprob in position.items():
        text = decode(token) if decode else token
        if text not in out or logprob > out[text]:
            out[text] = logprob
    return out


def backend_load(
    *, backend: str, model: str, options: EngineOptions = EngineOptions(), any_server: bool = False
) -> Backend:
    """Start the named backend on `model`. Bad input (unknown backend, missing model) raises InputError.

    `any_server`: the caller holds the server's key (a command line), so the openai backend may reach any
    `base_url`; otherwise only those in settings.OPENAI_BASE_URLS (see `EngineOptions.server_check`)."""
    if options.threads:
        os.environ["OMP_NUM_THREADS"] = str(options.threads)
    # The engine modules import this one, hence the imports here; each loads its engine only when started.
    if backend == "vllm":
        from llm.vllm_engine import VllmBackend

        return VllmBackend(model=model, options=options)
    if backend == "openai":
        from llm.openai_engine import OpenAIBackend

        return OpenAIBackend(model=model, options=options, any_server=any_server)
    if backend == "transformers":
        from llm.transformers_engine import TransformersBackend

        return TransformersBackend(model=model, options=options)
    raise InputError(f"Unknown backend {backend!r}: use one of {', '.join(BACKENDS)}.")
