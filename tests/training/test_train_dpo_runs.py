"""Real train_dpo runs on the tiny model: LoRA (adapter and merged weights), resume after a kill, a NaN stop,
precomputed reference log-probs, an SFT warm start with RPO."""

import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core.models import JobStatus
from tests.factories import TINY_MODEL
from tests.training.helpers import CHAT, ROW, write
from training.models import TrainingRun

pytestmark = [pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
QUICK = {"learning_rate": 5e-4, "batch_size": 8, "logging_steps": 1, "num_threads": 1}


def train(export, out, **options):
    return call_command(
        "train_dpo",
        data=str(export),
        output=str(out),
        stdout=StringIO(),
        **{"model": str(TINY_MODEL), **QUICK, **options},
    )


def tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.django_db
def test_lora_saves_an_adapter_and_merge_saves_full_weights_automodel_loads(story_export, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    train(story_export, out, lora=True, merge=True, lora_r=4, learning_rate=5e-3, max_steps=6)
    assert TrainingRun.objects.get().status == JobStatus.SUCCEEDED

    adapter = tensors(out / "adapter_model.safetensors")
    lora_b = [name for name in adapter if "lora_B" in name]
    assert lora_b and all(adapter[name].abs().sum() > 0 for name in lora_b)  # B starts at zero: it moved
    assert not (out / "model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(TINY_MODEL)

    base, merged = tensors(TINY_MODEL / "model.safetensors"), tensors(out / "merged" / "model.safetensors")
    assert base.keys() == merged.keys()
    assert any(not base[name].equal(merged[name]) for name in base)
    model = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (out / "merged" / "tokenizer.json").is_file()
    adapter_model = AutoModelForCausalLM.from_pretrained(out)  # transformers applies the adapter itself
    assert adapter_model.get_input_embeddings().weight.shape == model.get_input_embeddings().weight.shape


@pytest.mark.django_db(transaction=True)
def test_resume_after_a_kill_finishes_the_run_with_the_right_step_count(story_export, tmp_path):
    out = tmp_path / "killed"
    options = {"n_epochs": 2, "batch_size": 2, "save_steps": 4, "save_total_limit": 10}
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "PREFSTUDIO_TORCH_THREADS": "1",
        "TQDM_DISABLE": "1",
    }
    command = [sys.executable, "manage.py", "train_dpo", f"--data={story_export}", f"--model={TINY_MODEL}"]
    command += [f"--output={out}", "--learning-rate=5e-4", "--logging-steps=1"]
    command += [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint-4" / "trainer_state.json").exists():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "model.safetensors").exists(), "the run finished before it was killed"
    killed = TrainingRun.objects.get()
    assert killed.status == JobStatus.RUNNING  # a SIGKILL leaves no chance to record anything

    train(story_export, out, resume=True, **options)
    run = TrainingRun.objects.get()  # the same row, continued
    pairs = run.dataset_files["train"]["rows"]
    expected_steps = 2 * -(-pairs // 2)
    assert (run.pk, run.status, run.global_step) == (killed.pk, JobStatus.SUCCEEDED, expected_steps)
    state = json.loads((out / f"checkpoint-{expected_steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == expected_steps
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [m.step for m in run.metrics.filter(split="train")]
    assert train_steps == list(range(1, expected_steps + 1))  # none lost, none twice
    assert sorted(set(steps)) == list(range(1, expected_steps + 1))
    assert (out / "model.safetensors").is_file()


@pytest.mark.django_db
def test_a_nan_loss_stops_the_run_with_a_clear_error_and_failed_status(story_export, tmp_path):
    with pytest.raises(CommandError) as error:
        train(story_export, tmp_path / "nan", learning_rate=1e30, max_steps=20)
    assert "became nan at step" in str(error.value) and "Lower the learning rate" in str(error.value)
    run = TrainingRun.objects.get()
    assert run.status == JobStatus.FAILED and "became nan" in run.error
    assert run.global_step < 20


@pytest.mark.django_db
def test_precomputed_reference_log_probs_give_the_same_first_step_as_a_live_reference(story_export, tmp_path):
    train(story_export, tmp_path / "live", max_steps=2)
    train(story_export, tmp_path / "pre", max_steps=2, precompute_ref_logps=True)
    live, pre = (TrainingRun.objects.get(output_dir=str(tmp_path / name)) for name in ("live", "pre"))
    first = [run.metrics.filter(split="train").first().values for run in (live, pre)]
    assert first[0]["loss"] == pytest.approx(first[1]["loss"], abs=1e-5)
    assert pre.status == JobStatus.SUCCEEDED


@pytest.mark.django_db
def test_sft_warm_start_then_dpo_with_rpo_trains_from_the_sft_model(story_export, tmp_path):
    out = tmp_path / "sft"
    train(story_export, out, sft_epochs=1, rpo_alpha=1.0, max_steps=3)
    run = TrainingRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED, run.error
    base, sft = tensors(TINY_MODEL / "model.safetensors"), tensors(out / "sft" / "model.safetensors")
    assert any(not base[name].equal(sft[name]) for name in base)  # SFT moved the weights first
    first = run.metrics.filter(split="train").first().values
    assert first["rewards/margins"] == 0  # the reference is the SFT model, so DPO starts from a zero margin
    assert run.config["rpo_alpha"] == 1.0
    assert json.loads((out / "run_config.json").read_text())["resolved"]["trl_loss_type"] == ["sigmoid", "sft"]


@pytest.mark.django_db
def test_rows_trl_would_drop_or_truncate_are_reported_and_a_set_with_nothing_left_is_refused(tmp_path):
    rows = [
        {"prompt": "Once upon a time, there was a cat", "chosen": " who liked fish.", "rejected": " who ran."},
        {"prompt": "Once upon a time, there was a dog" * 4, "chosen": " who slept.", "rejected": " who sat."},
        {"prompt": "One day", "chosen": " a very long story about the sun and the moon" * 3, "rejected": " no."},
    ]
    write(tmp_path / "export" / "train.parquet", rows)
    stderr = StringIO()
    call_command(
        "train_dpo", data=str(tmp_path / "export"), model=str(TINY_MODEL), output=str(tmp_path / "o"),
        max_length=24, max_steps=1, batch_size=2, learning_rate=5e-4, stdout=StringIO(), stderr=stderr,
    )  # fmt: skip
    run = TrainingRun.objects.get()
    assert "1 row(s) dropped, their prompt alone fills max_length=24 tokens (row 2)" in stderr.getvalue()
    assert "1 row(s) truncated to max_length=24 tokens (row 3)" in stderr.getvalue()
    assert run.status == JobStatus.SUCCEEDED and len(run.warnings) == 2

    with pytest.raises(CommandError, match=r"every row.s prompt alone fills max_length=2 tokens"):
        train(tmp_path / "export", tmp_path / "o2", max_length=2)


@pytest.mark.django_db
def test_conversational_data_for_a_model_without_chat_template_is_refused_before_training(tmp_path):
    write(tmp_path / "export" / "train.parquet", [CHAT] * 2)
    with pytest.raises(CommandError, match=r"is conversational .* has no chat template"):
        train(tmp_path / "export", tmp_path / "o")
    assert TrainingRun.objects.get().status == JobStatus.FAILED


@pytest.mark.django_db
def test_string_rows_for_a_model_with_a_chat_template_train_only_when_asked_explicitly(tmp_path, chat_model):
    write(tmp_path / "export" / "train.parquet", [ROW] * 4)
    with pytest.raises(CommandError, match=r"holds plain-string rows .* but .*'s tokenizer has a chat template"):
        train(tmp_path / "export", tmp_path / "refused", model=str(chat_model), max_steps=1)
    assert TrainingRun.objects.get().status == JobStatus.FAILED
    train(
        tmp_path / "export",
        tmp_path / "asked",
        model=str(chat_model),
        max_steps=1,
        allow_string_rows_with_chat_template=True,
    )
    assert TrainingRun.objects.get(output_dir=str(tmp_path / "asked")).status == JobStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_torchrun_with_two_processes_trains_data_parallel_and_records_the_run_once(story_export, tmp_path):
    """Also with precomputed reference log-probs, which the ranks must share through one dataset cache."""
    out = tmp_path / "ddp"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}", "OMP_NUM_THREADS": "1"}
    env["HF_DATASETS_CACHE"] = str(tmp_path / "datasets-cache")
    command = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node=2", "manage.py", "train_dpo"]
    command += [f"--data={story_export}", f"--model={TINY_MODEL}", f"--output={out}", "--learning-rate=5e-4"]
    command += ["--batch-size=4", "--n-epochs=1", "--logging-steps=1", "--num-threads=1", "--precompute-ref-logps"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run = TrainingRun.objects.get()  # one row, though two processes ran the command
    pairs = run.dataset_files["train"]["rows"]
    assert run.global_step == -(-pairs // 8)  # 4 pairs per process per step, 2 processes
    assert run.device == "2 x CPU (1 threads)" and run.status == JobStatus.SUCCEEDED
    assert json.loads((out / "run_config.json").read_text())["resolved"]["world_size"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == run.metrics.count()
    assert f"Training run {run.pk} succeeded" in done.stdout and "Training succeeded" in done.stdout


FSDP_CONFIG = """\
compute_environment: LOCAL_MACHINE
distributed_type: FSDP
num_machines: 1
num_processes: 2
machine_rank: 0
mixed_precision: 'no'
use_cpu: true
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_reshard_after_forward: true
"""


@pytest.mark.django_db(transaction=True)
def test_an_fsdp_accelerate_config_on_two_cpu_processes_trains_data_parallel_and_says_it_is_not_sharded(
    story_export, tmp_path
):
    """The sharded path past one GPU is an accelerate FSDP config. accelerate 1.15 shards only across GPUs: on
    CPUs the same launch runs plain data parallel, which the run records as a warning."""
    config = tmp_path / "fsdp.yaml"
    config.write_text(FSDP_CONFIG)
    out = tmp_path / "fsdp"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}", "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).parent / "accelerate"), "launch", f"--config_file={config}", "manage.py"]
    command += ["train_dpo", f"--data={story_export}", f"--model={TINY_MODEL}", f"--output={out}"]
    command += ["--learning-rate=5e-4", "--batch-size=4", "--n-epochs=1", "--logging-steps=1", "--num-threads=1"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run = TrainingRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED and run.device == "2 x CPU (1 threads)"
    assert run.global_step == -(-run.dataset_files["train"]["rows"] // 8)  # 4 pairs per process per step
    assert any("asks for FSDP, but there is no GPU" in line for line in run.warnings)


@pytest.mark.django_db
def test_full_logits_on_cpu_log_the_same_metrics_as_trls_tiled_path(story_export, tmp_path, monkeypatch):
    from training import cpu_logps

    train(story_export, tmp_path / "plain", max_steps=3)
    monkeypatch.setattr(cpu_logps, "PLAIN_LOGITS_MAX_BYTES", 0)  # TRL's own fused, tiled log-prob path
    train(story_export, tmp_path / "tiled", max_steps=3)
    plain, tiled = (
        [m.values for m in TrainingRun.objects.get(output_dir=str(tmp_path / name)).metrics.filter(split="train")]
        for name in ("plain", "tiled")
    )
    assert len(plain) == len(tiled) == 3
    for ours, trls in zip(plain, tiled, strict=True):
        for key in ("loss", "rewards/margins", "rewards/chosen", "logps/rejected", "entropy", "logits/chosen"):
            assert ours[key] == pytest.approx(trls[key], rel=1e-4, abs=1e-5), key
        assert ours["mean_token_accuracy"] == trls["mean_token_accuracy"]
