"""A preference set the tiny real model can learn: its own stories, those containing one word preferred.

Stories are sampled from `stories260K` with transformers' generate (seeded per prompt), so the base and the
trained model can be sampled on the same prompts and seeds and their rates of the word compared.
"""

import math
import re
from pathlib import Path

PROMPTS = [
    "Once upon a time, there was a little girl",
    "Once upon a time, there was a cat",
    "One day, a boy named Tim",
    "Once upon a time, there was a big dog",
]
WORD = "park"
NEW_TOKENS = 40


def sample_stories(model_dir: str | Path, *, per_prompt: int, seed: int = 0) -> list[tuple[str, str]]:
    """(prompt, continuation) pairs; the continuation starts with its space, so prompt + continuation is the text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    samples = []
    for i, prompt in enumerate(PROMPTS):
        inputs = tokenizer([prompt] * per_prompt, return_tensors="pt")
        torch.manual_seed(seed * 1000 + i)
        with torch.no_grad():
            out = model.generate(
                **inputs, do_sample=True, top_k=0, max_new_tokens=NEW_TOKENS, pad_token_id=tokenizer.eos_token_id
            )
        for sequence in out:
            text = tokenizer.decode(sequence, skip_special_tokens=True)
            samples.append((prompt, text[len(prompt) :] if text.startswith(prompt) else " " + text))
    return samples


def has_word(text: str, word: str = WORD) -> bool:
    return re.search(rf"\b{word}\b", text, flags=re.IGNORECASE) is not None


def word_rate(samples: list[tuple[str, str]], word: str = WORD) -> float:
    return sum(has_word(story, word) for _, story in samples) / len(samples)


def preference_rows(samples: list[tuple[str, str]], word: str = WORD) -> list[dict]:
    """Per prompt, pair each story with the word (chosen) with one without it (rejected)."""
    rows = []
    for prompt in PROMPTS:
        stories = [story for p, story in samples if p == prompt]
        with_word = [s for s in stories if has_word(s, word)]
        without = [s for s in stories if not has_word(s, word)]
        for chosen, rejected in zip(with_word, without, strict=False):
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "comparison_id": len(rows)})
    return rows


def write_export(directory: Path, train: list[dict], validation: list[dict] | None = None) -> Path:
    """train.parquet (and validation.parquet) as exports write them: TRL columns plus a provenance column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(train), directory / "train.parquet")
    if validation:
        pq.write_table(pa.Table.from_pylist(validation), directory / "validation.parquet")
    return directory


def two_proportion_z(hits_a: int, n_a: int, hits_b: int, n_b: int) -> tuple[float, float]:
    """(z, one-sided p) for the hypothesis that rate b > rate a (pooled two-proportion z-test)."""
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (hits_b / n_b - hits_a / n_a) / se
    return z, 0.5 * math.erfc(z / math.sqrt(2))
