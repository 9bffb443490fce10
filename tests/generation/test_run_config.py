import pytest

from core.errors import InputError, Surface
from core.options import OptionError
from generation.run_config import RunConfig
from tests.factories import TINY_MODEL

MODEL = str(TINY_MODEL)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "tgi"}, "--backend 'tgi': use one of vllm, openai, transformers"),
        ({"n": 1}, "--n is 1: a comparison needs at least 2 candidates"),
        ({"temperatures": [0.7, 0.9, 1.1]}, "--temperatures has 3 values: give one, or one per candidate (--n 2)"),
        ({"top_p": [0.9, 0.95, 1.0]}, "--top-p has 3 values"),
        ({"temperatures": [-0.5]}, "a temperature is a number, 0 (greedy) or more"),
        ({"temperatures": [float("nan")]}, "a temperature is a number"),
        ({"temperatures": [float("inf")]}, "a temperature is a number"),
        ({"top_p": [float("nan")]}, "top-p lies in (0, 1]"),
        ({"temperatures": [0.0]}, "two candidates of one model at temperature 0 are the same text"),
        ({"temperatures": [0.0, 0.5, 0.0], "n": 3}, "two candidates of one model at temperature 0"),
        ({"top_p": [0.0]}, "top-p lies in (0, 1]"),
        ({"max_tokens": 0}, "--max-tokens is 0: it must be at least 1"),
        ({"batch_size": 0}, "--batch-size is 0"),
        ({"pairs": "best"}, "--pairs 'best': use one of all, random"),
        ({"prompts_file": ""}, "Nothing to generate for: give --prompts FILE, or --fill-campaign"),
        ({"model": "../no/such/model"}, "--model ../no/such/model: no such folder"),
        ({"model_b": "/no/such/tuned"}, "--model-b /no/such/tuned: no such folder"),
        ({"backend": "openai"}, "The openai backend needs --base-url"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_option_named(options, message):
    config = RunConfig(**{"model": MODEL, "prompts_file": "p.jsonl", **options})
    with pytest.raises(OptionError) as caught:
        config.validate()
    assert message in caught.value.worded(Surface.COMMAND_LINE)


def test_greedy_decoding_is_fine_once_per_model():
    RunConfig(model=MODEL, prompts_file="p.jsonl", temperatures=[0.0, 1.0]).validate()
    RunConfig(model=MODEL, model_b=MODEL, prompts_file="p.jsonl", temperatures=[0.0]).validate()


def test_a_folder_without_config_json_is_not_a_model(tmp_path):
    with pytest.raises(InputError, match=r"no config\.json in it"):
        RunConfig(model=str(tmp_path), prompts_file="p.jsonl").validate()


def test_hub_ids_and_server_model_names_are_not_checked_on_disk():
    RunConfig(model="meta-llama/Llama-3.2-1B", prompts_file="p.jsonl").validate()
    RunConfig(model="my-served-model", prompts_file="p.jsonl", backend="openai", base_url="http://x/v1").validate()


def test_config_round_trips_through_the_runs_json():
    config = RunConfig(model=MODEL, prompts_file="p.jsonl", temperatures=[0.7, 1.1], seed=13, dtype="float32")
    assert RunConfig.from_dict(config.as_dict()) == config


def test_two_models_share_the_gpu_unless_told_otherwise():
    assert RunConfig(model=MODEL).engine_options().gpu_memory_utilization is None
    two = RunConfig(model=MODEL, model_b=MODEL, revision="abc")
    assert two.engine_options().gpu_memory_utilization == 0.45
    assert two.engine_options().revision == "abc"
    assert two.engine_options_b().revision == ""
    assert (
        RunConfig(model=MODEL, model_b=MODEL, gpu_memory_utilization=0.3).engine_options().gpu_memory_utilization == 0.3
    )
