"""Ask a language model for completions: one small interface, three engines (vLLM, an OpenAI server, transformers).

A request is a conversation (messages + optional system) or a raw completion text, with its sampling
settings and seed; a result is the text, token counts, why it stopped and, on request, the top
log-probabilities of each generated token. Nothing here knows about campaigns or the database, so other
features (the AI judge asking "which response is better") use the same backends for their own requests.

Conversations get the model's chat template when it has one; a model without one (a base model such as
the tiny test model) gets a plain completion prompt: the system message and the turns' texts joined by
blank lines. A prompt that leaves no room in the model's context is not truncated: its result has
`finish_reason == PROMPT_TOO_LONG` and no text.

Heavy imports (torch, vllm, transformers, openai) happen inside functions, so the web process never
loads them.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from core.conversations import Message, conversation_with_system
from core.errors import InputError, StudioError
from generation.provenance import model_check, model_is_local, model_revision_of

PROMPT_TOO_LONG = "prompt_too_long"
BACKENDS = ("vllm", "openai", "transformers")

# What ../shared/VLLM_ON_CPU.md measured to work on a CPU-only machine: one process, float32, eager mode,
# a small explicit KV cache (without it vLLM takes 90% of RAM), a short context.
CPU_MAX_MODEL_LEN = 512
CPU_KV_CACHE_BYTES = 64 << 20


class BackendError(StudioError):
    """The engine or server refused or failed a request; the message says which and why."""


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one request, stored as they are with every candidate."""

    temperature: float = 1.0  # 0 is greedy decoding
    top_p: float = 1.0
    max_tokens: int = 256  # new tokens at most; fewer when the context fills up first
    logprobs: int = 0  # return the top-k log-probabilities of every generated token (0: none)

    def as_dict(self) -> dict[str, Any]:
        params = asdict(self)
        if not self.logprobs:
            del params["logprobs"]
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
    finish_reason: str  # "stop", "length", or PROMPT_TOO_LONG
    top_logprobs: list[dict[str, float]] | None = None  # per generated token: {token text: log-probability}


@dataclass(frozen=True)
class EngineOptions:
    """How to start the engine. None means: the engine's default on a GPU, the measured setting on a CPU."""

    revision: str = ""
    dtype: str | None = None
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    kv_cache_bytes: int | None = None
    base_url: str = ""  # openai: the server, e.g. http://127.0.0.1:8000/v1
    concurrency: int = 8  # openai: requests in flight at once
    openai_api: str = "auto"  # openai: "chat", "completions", or "auto" (chat unless the model has no template)
    request_timeout: float = 600.0  # openai: seconds per request


class Backend(Protocol):
    name: str
    model_name: str
    model_revision: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Results in the order of the requests."""
        ...

    def close(self) -> None: ...


def completion_text(messages: Sequence[Message], system: str = "") -> str:
    """The plain prompt for a model without a chat template: the texts joined by blank lines."""
    return "\n\n".join([system, *(m["content"] for m in messages)] if system else [m["content"] for m in messages])


def _too_long(prompt_tokens: int) -> GenerationResult:
    return GenerationResult(text="", prompt_tokens=prompt_tokens, completion_tokens=0, finish_reason=PROMPT_TOO_LONG)


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


class _Tokenized:
    """Prompt token ids as the engine will see them: the chat template when there is one, else plain text."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))

    def uses_chat(self, request: GenerationRequest) -> bool:
        return request.prompt is None and self.has_chat_template

    def ids(self, request: GenerationRequest) -> list[int]:
        if self.uses_chat(request):
            text = self.tokenizer.apply_chat_template(
                conversation_with_system(list(request.messages), request.system),
                tokenize=False,
                add_generation_prompt=True,
            )
            # The template writes the special tokens (BOS...) itself.
            return self.tokenizer.encode(text, add_special_tokens=False)
        text = request.prompt if request.prompt is not None else completion_text(request.messages, request.system)
        return self.tokenizer.encode(text)


def _top_logprobs_by_text(position: dict[Any, float], decode: Any = None) -> dict[str, float]:
    """{token: logprob} keyed by token text; two ids that decode alike keep the likelier one."""
    out: dict[str, float] = {}
    for token, logprob in position.items():
        text = decode(token) if decode else token
        if text not in out or logprob > out[text]:
            out[text] = logprob
    return out


# ---------------------------------------------------------------------------------------------------------
# vLLM's offline engine, in this process


def vllm_engine_kwargs(*, model: str, options: EngineOptions, on_gpu: bool) -> dict[str, Any]:
    """LLM(...) arguments: what the user gave, and on a CPU-only machine the settings measured to work."""
    kwargs: dict[str, Any] = {"model": model, "tensor_parallel_size": options.tensor_parallel_size}
    if options.revision:
        kwargs["revision"] = options.revision
    if options.dtype:
        kwargs["dtype"] = options.dtype
    if options.max_model_len:
        kwargs["max_model_len"] = options.max_model_len
    if options.gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
    if options.kv_cache_bytes is not None:
        kwargs["kv_cache_memory_bytes"] = options.kv_cache_bytes
    if not on_gpu:
        kwargs.setdefault("dtype", "float32")  # bfloat16 was slower on these CPUs
        kwargs.setdefault("max_model_len", min(CPU_MAX_MODEL_LEN, _model_context_length(model, options.revision)))
        kwargs.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
        kwargs["enforce_eager"] = True
        kwargs["distributed_executor_backend"] = "uni"
    return kwargs


def _model_context_length(model: str, revision: str) -> int:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model, revision=revision or None)
    return getattr(config, "max_position_embeddings", None) or CPU_MAX_MODEL_LEN


class VllmBackend:
    """vLLM's offline `LLM`: every request of a call goes to the engine at once, which batches them."""

    name = "vllm"

    def __init__(self, *, model: str, options: EngineOptions = EngineOptions()) -> None:
        model_check(model)
        on_gpu = gpu_available()
        if not on_gpu:
            # The engine core in this process: a second process only costs memory and start-up on a CPU.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.model_name = model
        self.model_revision = model_revision_of(model, options.revision)
        self.engine_kwargs = vllm_engine_kwargs(model=model, options=options, on_gpu=on_gpu)
        self.llm = LLM(**self.engine_kwargs)
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len
        self.tokenized = _Tokenized(self.llm.get_tokenizer())

    def _params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams

        s = request.sampling
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=request.seed,
            logprobs=s.logprobs or None,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        chats: list[int] = []
        completions: list[int] = []
        for index, request in enumerate(requests):
            prompt_tokens = len(self.tokenized.ids(request))
            if prompt_tokens >= self.max_model_len:
                results[index] = _too_long(prompt_tokens)
            else:
                (chats if self.tokenized.uses_chat(request) else completions).append(index)
        if chats:
            outputs = self.llm.chat(
                [conversation_with_system(list(requests[i].messages), requests[i].system) for i in chats],
                [self._params(requests[i]) for i in chats],
                use_tqdm=False,
            )
            for index, output in zip(chats, outputs, strict=True):
                results[index] = self._result(output)
        if completions:
            texts = [
                r.prompt if r.prompt is not None else completion_text(r.messages, r.system)
                for r in (requests[i] for i in completions)
            ]
            outputs = self.llm.generate(texts, [self._params(requests[i]) for i in completions], use_tqdm=False)
            for index, output in zip(completions, outputs, strict=True):
                results[index] = self._result(output)
        return [r for r in results if r is not None]

    @staticmethod
    def _result(output: Any) -> GenerationResult:
        completion = output.outputs[0]
        top = None
        if completion.logprobs is not None:
            top = [
                _top_logprobs_by_text({lp.decoded_token: lp.logprob for lp in position.values()})
                for position in completion.logprobs
            ]
        return GenerationResult(
            text=completion.text,
            prompt_tokens=len(output.prompt_token_ids or ()),
            completion_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason or "",
            top_logprobs=top,
        )

    def close(self) -> None:
        """Release the engine and its memory.

        vLLM keeps some state per process (its parallel groups): several engines can live in one process
        (model A and model B of a run), but closing one breaks the others, so close them together, when
        they are done. A new engine after that starts cleanly.
        """
        if getattr(self, "llm", None) is None:
            return
        import gc

        self.llm = None
        gc.collect()
        if gpu_available():
            import torch

            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------------
# Any OpenAI-compatible server (`vllm serve`, ...), with concurrent requests


class OpenAIBackend:
    """Requests to an OpenAI-compatible server; the API key comes from OPENAI_API_KEY (vllm serve needs none).

    `openai_api="auto"` uses the chat API, and switches to the completions API (with the plain prompt)
    for good when the server says the model has no chat template. A prompt the server finds longer than
    the context comes back as PROMPT_TOO_LONG.
    """

    name = "openai"

    def __init__(self, *, model: str, options: EngineOptions = EngineOptions()) -> None:
        import openai

        if not options.base_url:
            raise InputError("The openai backend needs --base-url, e.g. http://127.0.0.1:8000/v1.")
        self.client = openai.OpenAI(
            base_url=options.base_url,
            api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
            timeout=options.request_timeout,
            max_retries=2,
        )
        try:
            served = {m.id: m for m in self.client.models.list()}
        except openai.APIConnectionError:
            raise InputError(f"No OpenAI-compatible server answers at {options.base_url}: is it running?") from None
        except openai.APIStatusError as error:
            raise InputError(f"{options.base_url}/models answered {error.status_code}: {error.message}") from None
        if model not in served:
            raise InputError(
                f"The server at {options.base_url} does not serve {model!r}; it serves: {', '.join(served)}."
            )
        root = getattr(served[model], "root", None) or ""
        self.model_name = model
        self.model_revision = options.revision or (model_revision_of(root) if model_is_local(root) else "")
        self.concurrency = options.concurrency
        self.use_chat = options.openai_api != "completions"
        self.auto = options.openai_api == "auto"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, request: GenerationRequest, *, may_use_chat: bool = True) -> GenerationResult:
        import openai

        try:
            if may_use_chat and self.use_chat and request.prompt is None:
                return self._chat(request)
            return self._completion(request)
        except openai.BadRequestError as error:
            message = str(error.message)
            if "context length" in message or getattr(error, "param", None) == "input_tokens":
                return _too_long(0)
            if self.auto and may_use_chat and "chat template" in message:
                self.use_chat = False  # for good; requests in flight meanwhile land here too
                return self._one(request, may_use_chat=False)
            raise BackendError(f"The server refused a request for {self.model_name!r}: {message}") from None
        except openai.APIError as error:
            raise BackendError(f"The server failed a request for {self.model_name!r}: {error}") from None

    def _sampling_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        s = request.sampling
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        return kwargs

    def _chat(self, request: GenerationRequest) -> GenerationResult:
        kwargs = self._sampling_kwargs(request)
        if request.sampling.logprobs:
            kwargs.update(logprobs=True, top_logprobs=request.sampling.logprobs)
        response = self.client.chat.completions.create(
            messages=conversation_with_system(list(request.messages), request.system), **kwargs
        )
        choice = response.choices[0]
        top = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            top = [
                _top_logprobs_by_text({t.token: t.logprob for t in position.top_logprobs})
                for position in choice.logprobs.content
            ]
        return GenerationResult(
            text=choice.message.content or "",
            prompt_tokens=response.usage.prompt_tokens if response.usage else 0,
            completion_tokens=response.usage.completion_tokens if response.usage else 0,
            finish_reason=choice.finish_reason or "",
            top_logprobs=top,
        )

    def _completion(self, request: GenerationRequest) -> GenerationResult:
        kwargs = self._sampling_kwargs(request)
        if request.sampling.logprobs:
            kwargs["logprobs"] = request.sampling.logprobs
        prompt = request.prompt if request.prompt is not None else completion_text(request.messages, request.system)
        response = self.client.completions.create(prompt=prompt, **kwargs)
        choice = response.choices[0]
        top = None
        if choice.logprobs is not None and choice.logprobs.top_logprobs is not None:
            top = [_top_logprobs_by_text(position or {}) for position in choice.logprobs.top_logprobs]
        return GenerationResult(
            text=choice.text or "",
            prompt_tokens=response.usage.prompt_tokens if response.usage else 0,
            completion_tokens=response.usage.completion_tokens if response.usage else 0,
            finish_reason=choice.finish_reason or "",
            top_logprobs=top,
        )

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------------------------------------------------
# transformers `generate()`: the fallback where vLLM is not installed


class TransformersBackend:
    """Plain `model.generate()`, one request at a time so that each request's seed alone fixes its text."""

    name = "transformers"

    def __init__(self, *, model: str, options: EngineOptions = EngineOptions()) -> None:
        model_check(model)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        revision = options.revision or None
        dtype = getattr(torch, options.dtype) if options.dtype and options.dtype != "auto" else None
        if dtype is None:
            dtype = torch.float32 if self.device == "cpu" else "auto"
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
        self.model = AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=dtype).to(self.device)
        self.model.eval()
        self.model_name = model
        self.model_revision = model_revision_of(model, options.revision)
        config_len = getattr(self.model.config, "max_position_embeddings", None)
        self.max_model_len: int = options.max_model_len or config_len or self.tokenizer.model_max_length
        self.tokenized = _Tokenized(self.tokenizer)
        self.eos_ids = set(self._eos_ids())
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)

    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return list(eos) if isinstance(eos, list | tuple) else [eos]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return [self._one(request) for request in requests]

    def _one(self, request: GenerationRequest) -> GenerationResult:
        torch = self.torch
        ids = self.tokenized.ids(request)
        if len(ids) >= self.max_model_len:
            return _too_long(len(ids))
        s = request.sampling
        if request.seed is not None:
            torch.manual_seed(request.seed)
        sample = s.temperature > 0
        input_ids = torch.tensor([ids], device=self.device)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=sample,
                temperature=s.temperature if sample else None,
                top_p=s.top_p if sample else None,
                top_k=0 if sample else None,  # no top-k cut, like vLLM's default (transformers' default is 50)
                max_new_tokens=min(s.max_tokens, self.max_model_len - len(ids)),
                pad_token_id=self.pad_id,
                return_dict_in_generate=True,
                output_logits=bool(s.logprobs),
            )
        new = output.sequences[0, len(ids) :].tolist()
        stopped = bool(new) and new[-1] in self.eos_ids
        top = None
        if s.logprobs:
            top = []
            for logits in output.logits:
                logprobs = torch.log_softmax(logits[0].float(), dim=-1)
                values, indices = logprobs.topk(s.logprobs)
                top.append(
                    _top_logprobs_by_text(dict(zip(indices.tolist(), values.tolist(), strict=True)), self._decode)
                )
        return GenerationResult(
            text=self._continuation(ids, new),
            prompt_tokens=len(ids),
            completion_tokens=len(new),
            finish_reason="stop" if stopped else "length",
            top_logprobs=top,
        )

    def _continuation(self, ids: list[int], new: list[int]) -> str:
        """The new text as it continues the prompt: decoded alone, SentencePiece would drop its leading space."""
        head = self.tokenizer.decode(ids, skip_special_tokens=True)
        full = self.tokenizer.decode(ids + new, skip_special_tokens=True)
        return full[len(head) :] if full.startswith(head) else self.tokenizer.decode(new, skip_special_tokens=True)

    def _decode(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def close(self) -> None:
        del self.model


def backend_load(*, backend: str, model: str, options: EngineOptions = EngineOptions()) -> Backend:
    """Start the named backend on `model`. Bad input (unknown backend, missing model) raises InputError."""
    if backend == "vllm":
        return VllmBackend(model=model, options=options)
    if backend == "openai":
        return OpenAIBackend(model=model, options=options)
    if backend == "transformers":
        return TransformersBackend(model=model, options=options)
    raise InputError(f"Unknown backend {backend!r}: use one of {', '.join(BACKENDS)}.")
