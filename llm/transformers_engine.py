"""transformers `generate()`: the fallback where vLLM is not installed; torch and transformers load when it starts."""

from collections.abc import Sequence

from llm.base import (
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    Tokenized,
    too_long_result,
    top_logprobs_by_text,
)
from llm.provenance import model_check, model_revision_of


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
        self.tokenized = Tokenized(self.tokenizer)
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
            return too_long_result(len(ids))
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
                    top_logprobs_by_text(dict(zip(indices.tolist(), values.tolist(), strict=True)), self._decode)
                )
        return GenerationResult(
            text=self._continuation(ids, new),
            prompt_tokens=len(ids),
            completion_tokens=len(new),
            finish_reason="stop" if stopped else "length",
            top_logprobs=top,
            **self.tokenized.prompt_seen(request),
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
