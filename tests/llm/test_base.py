"""The engine-independent parts: requests, sampling, the plain prompt, choosing an engine; no model runs."""

import subprocess
import sys

import pytest
from django.conf import settings

from core.errors import InputError
from llm.base import PROMPT_CHAT, PROMPT_TEXT, GenerationRequest, Sampling, Tokenized, backend_load, completion_text
from tests.factories import TINY_MODEL
from tests.llm.helpers import CAT


def test_a_conversation_without_chat_template_becomes_its_texts_joined_by_blank_lines():
    assert completion_text(CAT) == "Once upon a time, there was a cat"
    turns = [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"}]
    assert completion_text(turns, "S") == "S\n\nA\n\nB\n\nC"


class TemplateTokenizer:
    chat_template = "{{ messages }}"


class PlainTokenizer:
    chat_template = None


def test_results_say_how_the_model_saw_the_prompt_chat_template_or_the_exact_text_it_continued():
    turns = [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"}]
    conversation = GenerationRequest(messages=turns, system="S")
    raw = GenerationRequest(prompt="Once upon a time")
    assert Tokenized(TemplateTokenizer()).prompt_seen(conversation) == {"prompt_format": PROMPT_CHAT}
    assert Tokenized(PlainTokenizer()).prompt_seen(conversation) == {
        "prompt_format": PROMPT_TEXT,
        "prompt_text": "S\n\nA\n\nB\n\nC",
    }
    # A raw prompt never goes through the template, and is recorded as given.
    for tokenizer in (TemplateTokenizer(), PlainTokenizer()):
        assert Tokenized(tokenizer).prompt_seen(raw) == {
            "prompt_format": PROMPT_TEXT,
            "prompt_text": "Once upon a time",
        }


def test_a_request_takes_a_conversation_or_a_raw_prompt():
    with pytest.raises(ValueError, match="either messages or a raw prompt"):
        GenerationRequest()
    with pytest.raises(ValueError, match="either messages or a raw prompt"):
        GenerationRequest(messages=CAT, prompt="x")


def test_sampling_records_logprobs_only_when_asked():
    assert Sampling(temperature=0.7).as_dict() == {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256}
    assert Sampling(logprobs=5).as_dict()["logprobs"] == 5


def test_unknown_backend_is_refused():
    with pytest.raises(InputError, match="Unknown backend 'tgi'"):
        backend_load(backend="tgi", model=str(TINY_MODEL))


def test_a_missing_model_folder_is_refused_before_any_engine_starts():
    with pytest.raises(InputError, match="no such folder"):
        backend_load(backend="vllm", model="../no/such/model")


def test_the_web_process_never_imports_an_engine(engine_env):
    """Pages, admin, tasks and the command module load without torch, vllm, transformers or openai."""
    code = (
        "import django, sys; django.setup(); "
        "import config.urls, generation.admin, generation.tasks, generation.management.commands.generate_pairs; "
        "print(sorted(m for m in ('torch', 'vllm', 'transformers', 'openai') if m in sys.modules))"
    )
    env = {**engine_env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


class CountingEngine:
    name = "counting"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, requests):
        from llm.base import GenerationResult

        self.calls.append(len(requests))
        return [GenerationResult(f"seed {r.seed}", 1, 1, "stop") for r in requests]


def test_an_engine_without_a_stream_gets_one_generate_call_per_chunk_and_requests_added_meanwhile_follow():
    from llm.base import BatchedStream, results_stream

    engine = CountingEngine()
    stream = results_stream(engine, chunk=3)
    assert isinstance(stream, BatchedStream)
    for seed in range(4):
        stream.add(seed, GenerationRequest(prompt="x", seed=seed))
    out = []
    for key, result in stream.results():
        out.append((key, result.text))
        if key == 0:
            stream.add("late", GenerationRequest(prompt="x", seed=9))
    assert out == [(0, "seed 0"), (1, "seed 1"), (2, "seed 2"), (3, "seed 3"), ("late", "seed 9")]
    assert engine.calls == [3, 2]
