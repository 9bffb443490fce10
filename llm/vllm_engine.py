"""vLLM's offline engine, in this process.

On a machine without a GPU it starts with what ../shared/VLLM_ON_CPU.md measured to work: one process,
float32, eager mode, a small explicit KV cache (without it vLLM takes 90% of RAM), a short context.
vllm and torch are imported when an engine starts, never at import.
"""

import gc
import os
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

from core.conversations import conversation_with_system
from llm.base import (
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    Tokenized,
    request_text,
    too_long_result,
    top_logprobs_by_text,
)
from llm.provenance import model_check, model_revision_of

CPU_MAX_MODEL_LEN = 512
CPU_KV_CACHE_BYTES = 64 << 20


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


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
        # A prompt split across two steps (chunked prefill) makes vLLM 0.32 rewind the request's seeded
        # generator, which the CPU generator cannot do ("CPU Generator does not use offset"): it happens once
        # enough seeded requests are in flight (240 SmolLM2 answers, measured). Prefill whole prompts instead.
        kwargs["enable_chunked_prefill"] = False
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
        self.on_gpu = on_gpu = gpu_available()
        if not on_gpu:
            # The engine core in this process: a second process only costs memory and start-up on a CPU.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.model_name = model
        self.model_revision = model_revision_of(model, options.revision)
        self.engine_kwargs = vllm_engine_kwargs(model=model, options=options, on_gpu=on_gpu)
        # vLLM freezes the garbage collector's heap itself once its engine is up (freeze_gc_heap), but collects
        # everything several times while it starts: freezing what is there already (Django, torch, vllm's
        # modules) spares those collections walking it again and again (seconds with Django loaded).
        gc.freeze()
        self.llm = LLM(**self.engine_kwargs)
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len
        self.tokenized = Tokenized(self.llm.get_tokenizer())

    def _params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s = request.sampling
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=request.seed,
            logprobs=s.logprobs or None,
            # Constrained decoding: only the allowed answers can be generated (the log-probs stay the model's).
            structured_outputs=StructuredOutputsParams(choice=list(s.choices)) if s.choices else None,
        )

    def stream(self) -> "VllmStream":
        """Requests go to the engine's scheduler as they are added, results come back as they finish."""
        return VllmStream(self)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        chats: list[int] = []
        completions: list[int] = []
        for index, request in enumerate(requests):
            prompt_tokens = len(self.tokenized.ids(request))
            if prompt_tokens >= self.max_model_len:
                results[index] = too_long_result(prompt_tokens)
            else:
                (chats if self.tokenized.uses_chat(request) else completions).append(index)
        if chats:
            outputs = self.llm.chat(
                [conversation_with_system(list(requests[i].messages), requests[i].system) for i in chats],
                [self._params(requests[i]) for i in chats],
                use_tqdm=False,
            )
            for index, output in zip(chats, outputs, strict=True):
                results[index] = self._result(output, self.tokenized.prompt_seen(requests[index]))
        if completions:
            texts = [request_text(requests[i]) for i in completions]
            outputs = self.llm.generate(texts, [self._params(requests[i]) for i in completions], use_tqdm=False)
            for index, output in zip(completions, outputs, strict=True):
                results[index] = self._result(output, self.tokenized.prompt_seen(requests[index]))
        return [r for r in results if r is not None]

    @staticmethod
    def _result(output: Any, prompt_seen: dict[str, str]) -> GenerationResult:
        completion = output.outputs[0]
        top = None
        if completion.logprobs is not None:
            top = [
                top_logprobs_by_text({lp.decoded_token: lp.logprob for lp in position.values()})
                for position in completion.logprobs
            ]
        return GenerationResult(
            text=completion.text,
            prompt_tokens=len(output.prompt_token_ids or ()),
            completion_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason or "",
            top_logprobs=top,
            **prompt_seen,
        )

    def close(self) -> None:
        """Release the engine and its memory.

        vLLM keeps some state per process (its parallel groups): several engines can live in one process
        (model A and model B of a run), but closing one breaks the others, so close them together, when
        they are done. A new engine after that starts cleanly.
        """
        if getattr(self, "llm", None) is None:
            return
        self.llm = None  # vLLM shuts its engine down and collects its garbage (cleanup_dist_env_and_memory)
        if self.on_gpu:
            import torch

            torch.cuda.empty_cache()


class VllmStream:
    """vLLM's scheduler fed as requests come: each `add` is queued in the engine at once (`LLM.enqueue_chat`
    through the chat template, as `generate` sends it; a raw text as the token ids the length check counted,
    those `LLM.generate` makes of it), and `results()` steps the engine
    and yields each request as it finishes, so the engine batches everything added (continuous batching) while
    the caller stores what is done. A prompt too long for the context is answered at once, never sent. One
    stream (or `generate` call) at a time per engine: each takes the engine's outputs as they come."""

    def __init__(self, backend: VllmBackend) -> None:
        self.backend = backend
        self.engine = backend.llm.llm_engine
        self.keys: dict[str, tuple[Hashable, dict[str, str]]] = {}  # vLLM request id -> (key, how the model saw it)
        self.ready: deque[tuple[Hashable, GenerationResult]] = deque()

    def add(self, key: Hashable, request: GenerationRequest) -> None:
        backend = self.backend
        ids = backend.tokenized.ids(request)
        if len(ids) >= backend.max_model_len:
            self.ready.append((key, too_long_result(len(ids))))
            return
        params = [backend._params(request)]
        if backend.tokenized.uses_chat(request):
            conversation = conversation_with_system(list(request.messages), request.system)
            [request_id] = backend.llm.enqueue_chat([conversation], params, use_tqdm=False)
        else:  # the tokens counted above are those LLM.generate would make of the text: not twice
            [request_id] = backend.llm.enqueue([{"prompt_token_ids": ids}], params, use_tqdm=False)
        # enqueue answers the engine's internal id; its outputs carry the id the LLM gave it (a counter).
        external = self.engine.output_processor.request_states[request_id].external_req_id
        self.keys[external] = (key, backend.tokenized.prompt_seen(request))

    def results(self) -> Iterator[tuple[Hashable, GenerationResult]]:
        while self.ready or self.keys:
            if self.ready:
                yield self.ready.popleft()
                continue
            for output in self.engine.step():
                if output.finished and output.request_id in self.keys:
                    key, prompt_seen = self.keys.pop(output.request_id)
                    self.ready.append((key, VllmBackend._result(output, prompt_seen)))

    def close(self) -> None:
        """Abort what is still in the engine, so that a later call on it (the judge, another run) starts clean."""
        if self.keys:
            self.engine.abort_request(list(self.keys), internal=False)
        self.keys.clear()
        self.ready.clear()
