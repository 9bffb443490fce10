"""LoRA: the adapter's configuration, its dropout given back after TRL's, and a saved adapter merged."""

from __future__ import annotations

from pathlib import Path

from training.config import DPORunConfig


def lora_config(config: DPORunConfig):
    from peft import LoraConfig

    # "all-linear": every linear layer but the output head, which TRL refuses (it reads lm_head.weight directly).
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def lora_dropout_restore(model, p: float) -> None:
    """TRL's disable_dropout (on by default, right for the policy/reference comparison) also zeroes the
    LoRA adapter's dropout: give the adapter back the dropout it was configured with."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and ".lora_dropout." in f".{name}.":
            module.p = p


def merge_adapter_from_disk(adapter_dir: Path, merged_dir: Path, tokenizer) -> None:
    """Fold a saved adapter into its base weights: a plain model AutoModelForCausalLM loads without peft.
    From the files, not from the trainer's model, whose weights may be sharded across processes."""
    from peft import AutoPeftModelForCausalLM

    merged = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(merged_dir))
    tokenizer.save_pretrained(str(merged_dir))
