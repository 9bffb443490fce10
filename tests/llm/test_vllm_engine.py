"""vLLM's offline engine on CPU, on the tiny model; and a model with a chat template, in vLLM and transformers."""

import pytest

from llm.base import PROMPT_CHAT, PROMPT_TOO_LONG, EngineOptions, GenerationRequest, Sampling
from llm.transformers_engine import TransformersBackend
from llm.vllm_engine import vllm_engine_kwargs
from tests.factories import TINY_MODEL
from tests.llm.helpers import (
    CAT,
    GREEDY,
    LONG,
    SAMPLE,
    check_logprobs_of_the_generated_tokens,
    check_samples_differ_and_seeds_reproduce,
    check_too_long_prompts_are_flagged_not_truncated,
)


def test_cpu_engine_defaults_are_the_measured_ones_and_gpu_options_pass_through():
    cpu = vllm_engine_kwargs(model=str(TINY_MODEL), options=EngineOptions(), on_gpu=False)
    assert cpu == {
        "model": str(TINY_MODEL),
        "tensor_parallel_size": 1,
        "dtype": "float32",
        "max_model_len": 512,
        "kv_cache_memory_bytes": 64 << 20,
        "enforce_eager": True,
        "distributed_executor_backend": "uni",
        "enable_chunked_prefill": False,
    }
    options = EngineOptions(dtype="bfloat16", max_model_len=4096, tensor_parallel_size=2, gpu_memory_utilization=0.8)
    gpu = vllm_engine_kwargs(model="org/model", options=options, on_gpu=True)
    assert gpu == {
        "model": "org/model",
        "tensor_parallel_size": 2,
        "dtype": "bfloat16",
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.8,
    }


@pytest.mark.slow
class TestVllm:
    def test_samples_differ_and_the_same_seed_gives_the_same_text(self, vllm_backend):
        check_samples_differ_and_seeds_reproduce(vllm_backend)

    def test_returns_top_logprobs_of_the_generated_tokens(self, vllm_backend):
        check_logprobs_of_the_generated_tokens(vllm_backend)

    def test_prompts_too_long_for_the_context_are_flagged(self, vllm_backend):
        check_too_long_prompts_are_flagged_not_truncated(vllm_backend)
        assert vllm_backend.max_model_len == 512

    def test_its_stream_gives_what_generate_gives_and_takes_requests_while_it_runs(self, vllm_backend):
        requests = [
            GenerationRequest(messages=[{"role": "user", "content": f"Once upon a time, there was a {thing}"}],
                              sampling=Sampling(temperature=t, top_p=0.95, max_tokens=24), seed=seed)
            for seed, thing in enumerate(["cat", "dog", "frog", "bear", "fish", "duck"] * 20)
            for t in (0.7, 1.1)
        ] + [GenerationRequest(messages=LONG, sampling=GREEDY)]  # fmt: skip
        expected = vllm_backend.generate(requests)
        stream = vllm_backend.stream()
        for index in range(10):
            stream.add(index, requests[index])
        got = {}
        for key, result in stream.results():
            got[key] = result
            if key == 0:  # the rest while the first ones run
                for index in range(10, len(requests)):
                    stream.add(index, requests[index])
        stream.close()
        assert [got[i] for i in range(len(requests))] == expected  # same texts, counts, finish reasons
        assert expected[-1].finish_reason == PROMPT_TOO_LONG

    def test_a_closed_stream_leaves_nothing_in_the_engine(self, vllm_backend):
        request = GenerationRequest(messages=CAT, sampling=SAMPLE, seed=7)
        before = vllm_backend.generate([request])
        stream = vllm_backend.stream()
        for seed in range(8):
            stream.add(seed, GenerationRequest(messages=CAT, sampling=SAMPLE, seed=seed))
        next(stream.results())
        stream.close()
        assert not vllm_backend.llm.llm_engine.has_unfinished_requests()
        assert vllm_backend.generate([request]) == before

    def test_runs_on_the_measured_cpu_settings_and_fingerprints_the_weights(self, vllm_backend):
        assert vllm_backend.engine_kwargs["enforce_eager"] is True
        assert vllm_backend.engine_kwargs["kv_cache_memory_bytes"] == 64 << 20
        assert vllm_backend.model_revision.startswith("sha256:")
        assert not vllm_backend.tokenized.has_chat_template


@pytest.mark.slow
def test_models_with_a_chat_template_get_it_in_both_engines(chat_model, vllm_chat_backend):
    request = GenerationRequest(messages=CAT, system="Tell stories.", sampling=GREEDY, seed=3)
    transformers = TransformersBackend(model=str(chat_model))
    rendered = transformers.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Tell stories."}, *CAT], tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|im_start|>system\nTell stories.<|im_end|>\n<|im_start|>user\nOnce upon a time, there was a cat<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    expected_tokens = len(transformers.tokenizer.encode(rendered, add_special_tokens=False))
    [ours] = transformers.generate([request])
    assert ours.prompt_tokens == expected_tokens
    [theirs] = vllm_chat_backend.generate([request])  # through LLM.chat
    stream = vllm_chat_backend.stream()  # through LLM.enqueue_chat
    stream.add("only", request)
    assert list(stream.results()) == [("only", theirs)]
    assert theirs.prompt_tokens == expected_tokens  # so the too-long check counts what the engine sees
    assert theirs.text == ours.text
    assert (ours.prompt_format, theirs.prompt_format) == (PROMPT_CHAT, PROMPT_CHAT)
    assert ours.prompt_text == theirs.prompt_text == ""


@pytest.mark.slow
def test_two_engines_in_one_process_each_keep_their_own_results(vllm_backend, vllm_chat_backend):
    """What a run with --model-b does: both engines alive, used in turns."""
    request = GenerationRequest(messages=CAT, sampling=SAMPLE, seed=7)
    before = vllm_backend.generate([request])[0].text
    other = vllm_chat_backend.generate([request])[0].text
    assert vllm_backend.generate([request])[0].text == before
    assert vllm_chat_backend.generate([request])[0].text == other != before
