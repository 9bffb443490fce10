"""Which preference rows TRL will cut: their token lengths, measured the way TRL's DPOTrainer tokenizes them.

TRL tokenizes prompt+chosen and prompt+rejected (string rows get the EOS token appended first, unless they end
with it; conversational rows go through the chat template) and its collator cuts each to `max_length`. A row is
*overlong* when either would be cut. When the prompt alone fills `max_length`, TRL drops the row without a
word: `prompt_fills`. Used by exports (counted on the dataset card) and by training (warnings before a run).
transformers is imported here only, when a tokenizer is loaded by name.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from core.errors import InputError


@dataclass(frozen=True, slots=True)
class RowLength:
    prompt: int
    longest: int  # the longer of prompt+chosen and prompt+rejected, in tokens

    def overlong(self, max_length: int) -> bool:
        """TRL cuts the row to max_length (or drops it, when prompt_fills)."""
        return self.longest > max_length

    def prompt_fills(self, max_length: int) -> bool:
        """The prompt alone fills max_length: TRL drops the row silently."""
        return self.prompt >= max_length


@lru_cache(maxsize=2)
def tokenizer_load(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as error:
        raise InputError(
            f"Cannot load the tokenizer {name_or_path!r} ({error}). Give the directory of a Hugging Face "
            "tokenizer (tokenizer.json or tokenizer.model with its config)."
        ) from None


class LengthMeter:
    """Measures rows with one tokenizer: given loaded, or by name (then loaded once, see tokenizer_load)."""

    def __init__(self, *, tokenizer: Any, conversational: bool) -> None:
        self.tokenizer = tokenizer_load(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.conversational = conversational
        if conversational and not getattr(self.tokenizer, "chat_template", None):
            name = tokenizer if isinstance(tokenizer, str) else getattr(tokenizer, "name_or_path", "")
            raise InputError(
                f"The tokenizer {name!r} has no chat template, so conversational rows cannot be measured "
                "(and TRL could not tokenize them either): use a chat model's tokenizer, or --format string for "
                "single-turn prompts."
            )

    def measure(self, rows: list[dict[str, Any]]) -> list[RowLength]:
        if not rows:
            return []
        if self.conversational:
            prompts = self._chat([row["prompt"] for row in rows], add_generation_prompt=True)
            chosen = self._chat([row["prompt"] + row["chosen"] for row in rows])
            rejected = self._chat([row["prompt"] + row["rejected"] for row in rows])
        else:
            eos = self.tokenizer.eos_token or ""
            prompts = self._text([row["prompt"] for row in rows])
            chosen = self._text([row["prompt"] + _with_eos(row["chosen"], eos) for row in rows])
            rejected = self._text([row["prompt"] + _with_eos(row["rejected"], eos) for row in rows])
        return [RowLength(p, max(c, r)) for p, c, r in zip(prompts, chosen, rejected, strict=True)]

    def _text(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts)["input_ids"]]

    def _chat(self, conversations: list[list[dict[str, str]]], add_generation_prompt: bool = False) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(
            conversations, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt
        )
        return [len(ids) for ids in encoded["input_ids"]]


def _with_eos(text: str, eos: str) -> str:
    return text if not eos or text.endswith(eos) else text + eos
