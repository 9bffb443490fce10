"""training/lora.py: the adapter's dropout, which TRL's disable_dropout zeroes, given back."""


def test_lora_dropout_is_given_back_after_trl_disables_dropout():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tests.factories import TINY_MODEL
    from training.lora import lora_dropout_restore

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(TINY_MODEL),
        LoraConfig(r=2, lora_dropout=0.3, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    dropouts = [m for n, m in model.named_modules() if ".lora_dropout." in f".{n}." and hasattr(m, "p")]
    for module in dropouts:
        module.p = 0.0  # what TRL's disable_dropout does
    lora_dropout_restore(model, 0.3)
    assert dropouts and {m.p for m in dropouts} == {0.3}
