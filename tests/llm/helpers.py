"""What every real engine must do on the tiny model (../shared/models/stories260K), checked the same way for each."""

from llm.base import PROMPT_TEXT, PROMPT_TOO_LONG, GenerationRequest, Sampling

CAT = [{"role": "user", "content": "Once upon a time, there was a cat"}]
LONG = [{"role": "user", "content": "Once upon a time there was a cat. " * 80}]  # 802 tokens > 512
NEAR = [{"role": "user", "content": "Once upon a time there was a cat. " * 48}]  # 482 tokens: 30 left
SAMPLE = Sampling(temperature=1.0, top_p=0.95, max_tokens=48)
GREEDY = Sampling(temperature=0.0, max_tokens=16)


def check_samples_differ_and_seeds_reproduce(backend) -> None:
    results = backend.generate(
        [
            GenerationRequest(messages=CAT, sampling=SAMPLE, seed=1),
            GenerationRequest(messages=CAT, sampling=SAMPLE, seed=2),
            GenerationRequest(messages=CAT, sampling=SAMPLE, seed=1),
        ]
    )
    first, second, again = results
    assert first.text.strip() and second.text.strip()
    assert first.text != second.text
    assert again.text == first.text
    assert first.prompt_tokens == 11  # BOS + the story opening
    assert 0 < first.completion_tokens <= 48
    assert first.finish_reason in ("stop", "length")
    assert first.top_logprobs is None
    # The tiny model has no chat template: it continued the story opening itself, nothing added.
    assert (first.prompt_format, first.prompt_text) == (PROMPT_TEXT, CAT[0]["content"])


def check_logprobs_of_the_generated_tokens(backend) -> None:
    [result] = backend.generate([GenerationRequest(prompt="Once upon a time", sampling=Sampling(0.0, 1.0, 4, 3))])
    assert result.text.startswith(", there was")
    assert len(result.top_logprobs) == result.completion_tokens == 4
    first = result.top_logprobs[0]
    assert 3 <= len(first) <= 4  # the top 3, plus the sampled token when it is not among them
    assert max(first, key=first.get) == ","
    assert all(value <= 0 for position in result.top_logprobs for value in position.values())


def check_too_long_prompts_are_flagged_not_truncated(backend) -> None:
    too_long, near, fine = backend.generate(
        [
            GenerationRequest(messages=LONG, sampling=GREEDY),
            GenerationRequest(messages=NEAR, sampling=Sampling(temperature=0.0, max_tokens=48)),
            GenerationRequest(messages=CAT, sampling=GREEDY),
        ]
    )
    assert too_long.finish_reason == PROMPT_TOO_LONG
    assert (too_long.text, too_long.completion_tokens) == ("", 0)
    # A prompt that fits but leaves less room than max_tokens generates until the context is full.
    assert near.finish_reason != PROMPT_TOO_LONG
    assert 0 < near.completion_tokens <= 48
    assert near.prompt_tokens + near.completion_tokens <= 512
    assert fine.text
