"""transformers `generate()` on the tiny model, held to the same checks as vLLM and to vLLM's greedy text."""

import pytest

from llm.base import GenerationRequest, Sampling
from tests.llm.helpers import (
    CAT,
    check_logprobs_of_the_generated_tokens,
    check_samples_differ_and_seeds_reproduce,
    check_too_long_prompts_are_flagged_not_truncated,
)


@pytest.mark.slow
class TestTransformers:
    def test_samples_differ_and_the_same_seed_gives_the_same_text(self, transformers_backend):
        check_samples_differ_and_seeds_reproduce(transformers_backend)

    def test_returns_top_logprobs_of_the_generated_tokens(self, transformers_backend):
        check_logprobs_of_the_generated_tokens(transformers_backend)

    def test_prompts_too_long_for_the_context_are_flagged(self, transformers_backend):
        check_too_long_prompts_are_flagged_not_truncated(transformers_backend)

    def test_greedy_text_is_the_same_as_vllms(self, transformers_backend, vllm_backend):
        request = GenerationRequest(messages=CAT, sampling=Sampling(temperature=0.0, max_tokens=24))
        [ours] = transformers_backend.generate([request])
        [theirs] = vllm_backend.generate([request])
        assert ours.text == theirs.text
        assert ours.text.startswith(" named")  # the continuation keeps its leading space
