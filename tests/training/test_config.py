import json

import pytest

from core.errors import InputError, Surface
from core.options import OptionError
from training.config import (
    BASE_LEARNING_RATE_FULL,
    BASE_LEARNING_RATE_LORA,
    RUN_RECORD_KEYS,
    DPORunConfig,
    build_config,
    trl_dpo_config,
)

REQUIRED = {"data": "export/", "model": "some/model", "output": "out/"}


def config(**values) -> DPORunConfig:
    return build_config(overrides={**REQUIRED, **values})


def problems_of(**values) -> str:
    """The problems as the command line words them (--beta)."""
    with pytest.raises(OptionError) as error:
        config(**values)
    return error.value.worded(Surface.COMMAND_LINE)


@pytest.mark.parametrize("beta", [0, -0.1, 2.5])
def test_beta_outside_zero_to_two_is_refused_with_the_allowed_range(beta):
    assert f"beta is {beta:g}: it must be > 0 and <= 2" in problems_of(beta=beta)


def test_beta_of_exactly_two_is_allowed():
    assert config(beta=2.0).beta == 2.0


def test_defaults_follow_the_hosted_apis():
    c = config()
    assert (c.n_epochs, c.beta, c.batch_size, c.loss_type) == (2, 0.1, 8, ["sigmoid"])


def test_learning_rate_multiplier_scales_the_documented_base_rate():
    assert config(learning_rate_multiplier=3).resolved_learning_rate == pytest.approx(3 * BASE_LEARNING_RATE_FULL)
    assert config(lora=True, learning_rate_multiplier=2).resolved_learning_rate == pytest.approx(
        2 * BASE_LEARNING_RATE_LORA
    )
    assert config().resolved_learning_rate == BASE_LEARNING_RATE_FULL
    assert config(learning_rate=5e-4).resolved_learning_rate == 5e-4


def test_learning_rate_and_multiplier_together_are_refused():
    assert "Give --learning-rate or --learning-rate-multiplier, not both" in problems_of(
        learning_rate=1e-5, learning_rate_multiplier=2
    )


def test_non_positive_counts_and_rates_are_refused_naming_the_flag():
    message = problems_of(batch_size=0, n_epochs=-1, learning_rate=0.0)
    assert "--batch-size is 0: it must be a whole number >= 1" in message
    assert "--n-epochs is -1: it must be a whole number >= 1" in message
    assert "--learning-rate is 0: it must be a positive number" in message


def test_lora_options_without_lora_are_refused():
    message = problems_of(lora_r=8, merge=True)
    assert "--lora-r, --merge only make(s) sense with --lora" in message


def test_lora_gets_its_defaults_only_when_enabled():
    c = config(lora=True)
    assert (c.lora_r, c.lora_alpha, c.lora_dropout) == (16, 32, 0.05)
    assert config().lora_r is None


def test_unknown_loss_type_lists_the_choices():
    message = problems_of(loss_type=["dpo"])
    assert "unknown loss 'dpo'" in message
    assert "sigmoid, hinge, ipo" in message


def test_loss_weights_need_one_weight_per_loss_type():
    assert "--loss-weights has 1 weight(s) for 2 loss type(s)" in problems_of(
        loss_type=["sigmoid", "ipo"], loss_weights=[1.0]
    )


def test_rpo_alpha_becomes_trl_sigmoid_plus_weighted_sft_loss():
    c = config(rpo_alpha=0.5)
    assert c.trl_losses == (["sigmoid", "sft"], [1.0, 0.5])
    assert config(loss_type=["ipo", "hinge"], loss_weights=[0.3, 0.7], rpo_alpha=1.0).trl_losses == (
        ["ipo", "hinge", "sft"],
        [0.3, 0.7, 1.0],
    )


def test_rpo_alpha_must_be_positive():
    assert "--rpo-alpha is -1: it must be > 0" in problems_of(rpo_alpha=-1.0)


def test_missing_data_model_and_output_are_all_reported_at_once():
    with pytest.raises(OptionError) as error:
        build_config(overrides={})
    for name in ("data", "model", "output"):
        assert f"{name} is missing: give --{name} or '{name}' in the config file" in error.value.worded(
            Surface.COMMAND_LINE
        )


def test_yaml_config_file_is_read_and_typed(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: export/\nmodel: m\noutput: o\nn-epochs: 3\nlearning_rate: 5e-4\nlora: true\nloss_type: ipo")
    values = DPORunConfig.from_file(path, ignore=RUN_RECORD_KEYS)
    assert values["n_epochs"] == 3 and values["learning_rate"] == 5e-4 and values["lora"] is True
    assert values["loss_type"] == ["ipo"]


def test_command_line_values_override_the_config_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**REQUIRED, "beta": 0.5, "batch_size": 4}))
    c = build_config(file_values=DPORunConfig.from_file(path, ignore=RUN_RECORD_KEYS), overrides={"beta": 0.2})
    assert (c.beta, c.batch_size) == (0.2, 4)


def test_config_file_with_an_unknown_option_names_it(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\n")
    with pytest.raises(
        InputError,
        match=r"unknown option\(s\) epochs\. Known options: allow_string_rows_with_chat_template, batch_size",
    ):
        DPORunConfig.from_file(path, ignore=RUN_RECORD_KEYS)


def test_config_file_with_a_wrong_type_names_the_option(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("beta: high\n")
    with pytest.raises(InputError, match="beta must be a number, not 'high'"):
        DPORunConfig.from_file(path, ignore=RUN_RECORD_KEYS)


def test_config_file_that_is_not_yaml_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("beta: [1, 2\n")
    with pytest.raises(InputError, match="is not valid YAML"):
        DPORunConfig.from_file(path, ignore=RUN_RECORD_KEYS)


def test_saved_run_config_loads_back_as_a_config_file(tmp_path):
    original = config(beta=0.3, lora=True, rpo_alpha=1.0)
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps({**original.as_dict(), "resolved": {"learning_rate": 1e-5}}))
    assert build_config(file_values=DPORunConfig.from_file(path, ignore=RUN_RECORD_KEYS)) == original


def test_trl_config_on_cpu_turns_off_bf16_and_checkpointing_and_keeps_nan_losses_visible(tmp_path):
    c = config(learning_rate=5e-4, rpo_alpha=1.0, max_steps=7, lora=True)
    args = trl_dpo_config(c, output_dir=str(tmp_path), on_gpu=False, bf16=False, has_eval=True)
    assert (args.bf16, args.use_cpu, args.gradient_checkpointing) == (False, True, False)
    assert args.learning_rate == 5e-4 and args.max_steps == 7
    assert args.loss_type == ["sigmoid", "sft"] and args.loss_weights == [1.0, 1.0]
    assert args.logging_nan_inf_filter is False
    assert args.eval_strategy == "steps" and args.per_device_train_batch_size == 8


def test_lr_schedulers_are_the_installed_transformers_ones():
    from transformers import SchedulerType

    from training.config import LR_SCHEDULERS

    assert set(LR_SCHEDULERS) == {s.value for s in SchedulerType}


def test_an_unknown_lr_scheduler_is_refused_with_the_choices():
    assert "--lr-scheduler-type 'cosyne': choose from linear, cosine," in problems_of(lr_scheduler_type="cosyne")


def test_label_smoothing_with_a_loss_that_ignores_it_is_refused():
    assert "--label-smoothing 0.1 does nothing with --loss-type sigmoid" in problems_of(label_smoothing=0.1)
    assert config(label_smoothing=0.1, loss_type=["robust"]).label_smoothing == 0.1


def test_on_a_gpu_with_bf16_the_models_load_in_bfloat16_and_checkpointing_is_on_by_default(tmp_path):
    from training.config import trl_dpo_kwargs

    gpu = trl_dpo_kwargs(config(), output_dir=str(tmp_path), on_gpu=True, bf16=True, has_eval=False)
    assert gpu["model_init_kwargs"] == {"dtype": "bfloat16"} and gpu["gradient_checkpointing"] is True
    cpu = trl_dpo_kwargs(config(), output_dir=str(tmp_path), on_gpu=False, bf16=False, has_eval=False)
    assert cpu["model_init_kwargs"] is None and cpu["gradient_checkpointing"] is False
    chosen = trl_dpo_kwargs(
        config(gradient_checkpointing=False), output_dir="o", on_gpu=True, bf16=True, has_eval=False
    )
    assert chosen["gradient_checkpointing"] is False
