"""train_dpo's checks and records, with the model-loading part replaced: every refusal here happens before any
model is loaded, and a run is recorded once, by the main process only."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.models import JobStatus
from tests.training.helpers import ROW, write
from training import services
from training.device import DeviceInfo
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def export(tmp_path) -> Path:
    write(tmp_path / "export" / "train.parquet", [ROW] * 4)
    write(tmp_path / "export" / "validation.parquet", [ROW])
    return tmp_path / "export"


def no_training(*args, **kwargs):
    raise AssertionError("the model must not be loaded when the input is bad")


def run_command(**options) -> str:
    stdout = StringIO()
    call_command("train_dpo", stdout=stdout, stderr=StringIO(), **options)
    return stdout.getvalue()


def test_bad_beta_is_a_clear_command_error_before_any_model_loads(export, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "dpo_train", no_training)
    with pytest.raises(CommandError, match=r"beta is 3: it must be > 0 and <= 2"):
        run_command(data=str(export), model="m", output=str(tmp_path / "o"), beta=3.0)
    assert not TrainingRun.objects.exists()


def test_bad_rows_are_a_command_error_naming_file_and_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(services, "dpo_train", no_training)
    bad = write(tmp_path / "bad" / "train.parquet", [ROW, {**ROW, "rejected": ROW["chosen"]}])
    with pytest.raises(CommandError) as error:
        run_command(data=str(bad.parent), model="m", output=str(tmp_path / "o"))
    assert f"{bad} (train): 1 problem(s)" in str(error.value)
    assert "chosen == rejected (a pair that teaches nothing: drop it): row 2" in str(error.value)


def test_resume_without_a_checkpoint_is_refused(export, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "dpo_train", no_training)
    with pytest.raises(CommandError, match="holds no checkpoint to resume from"):
        run_command(data=str(export), model="m", output=str(tmp_path / "o"), resume=True)


def test_output_holding_a_trained_model_is_not_overwritten(export, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "dpo_train", no_training)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "config.json").write_text("{}")
    with pytest.raises(CommandError, match="already holds a trained model, checkpoints or an SFT warm start"):
        run_command(data=str(export), model="m", output=str(tmp_path / "o"))


def test_a_run_is_recorded_with_config_dataset_checksum_metrics_and_final_metrics(export, tmp_path, fake_training):
    out = run_command(data=str(export), model="base/model", output=str(tmp_path / "o"), beta=0.2, lora=True)
    run = TrainingRun.objects.get()
    assert f"Training run {run.pk} succeeded after 2 steps" in out
    assert "Adapter and tokenizer saved in" in out
    assert run.status == JobStatus.SUCCEEDED
    assert (run.base_model, run.config["beta"], run.config["lora_r"]) == ("base/model", 0.2, 16)
    assert run.dataset_sha256 == run.dataset_files["train"]["sha256"] and len(run.dataset_sha256) == 64
    assert run.dataset_files["validation"]["rows"] == 1
    assert run.output_dir == str((tmp_path / "o").resolve()) and run.device == "CPU (1 threads)"
    assert [(m.split, m.step, m.values["rewards/accuracies"]) for m in run.metrics.all()] == [
        ("train", 1, 0.0),
        ("eval", 2, 0.75),
    ]
    assert run.final_metrics == {"eval_rewards/accuracies": 0.75}
    assert (tmp_path / "o" / "run_config.json").is_file()


def test_config_file_values_reach_the_trainer_and_flags_override_them(export, tmp_path, fake_training):
    path = tmp_path / "run.yaml"
    path.write_text(f"data: {export}\nmodel: m\noutput: {tmp_path / 'o'}\nbeta: 0.5\nbatch_size: 2\nloss_type: ipo\n")
    run_command(config=str(path), beta=0.25, loss_type="ipo,hinge", loss_weights="0.5,0.5")
    given = fake_training[0]["config"]
    assert (given.beta, given.batch_size) == (0.25, 2)
    assert (given.loss_type, given.loss_weights) == (["ipo", "hinge"], [0.5, 0.5])


def test_non_main_ranks_of_a_multi_gpu_launch_do_not_record_the_run(export, tmp_path, fake_training, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    out = run_command(data=str(export), model="m", output=str(tmp_path / "o"))
    assert "Training succeeded after 2 steps" in out
    assert not TrainingRun.objects.exists()
    assert not (tmp_path / "o" / "run_config.json").exists()


def test_a_failure_during_training_leaves_the_run_failed_with_the_error(export, tmp_path, monkeypatch):
    def crash(config, data, *, on_start=None, **kwargs):
        on_start(DeviceInfo(on_gpu=False, bf16=False, description="CPU"), [])
        raise RuntimeError("out of memory")

    monkeypatch.setattr(services, "dpo_train", crash)
    with pytest.raises(RuntimeError):
        run_command(data=str(export), model="m", output=str(tmp_path / "o"))
    run = TrainingRun.objects.get()
    assert (run.status, run.error) == (JobStatus.FAILED, "RuntimeError: out of memory")
    assert run.finished_at is not None


def test_resume_on_data_that_changed_since_the_run_started_is_refused(export, tmp_path, monkeypatch):
    import json

    from training.data import preference_data_load

    monkeypatch.setattr(services, "dpo_train", no_training)
    out = tmp_path / "o"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / "trainer_state.json").write_text("{}")
    started_on = preference_data_load(str(export)).files()
    saved = {"data": str(export), "model": "m", "output": str(out), "resolved": {"dataset": started_on}}
    (out / "run_config.json").write_text(json.dumps(saved))
    with pytest.raises(AssertionError, match="the model must not be loaded"):  # the same data: it goes ahead
        run_command(data=str(export), model="m", output=str(out), resume=True)
    write(export / "train.parquet", [ROW] * 5)  # exported again, or edited
    with pytest.raises(CommandError, match=r"--resume: the train data .*train\.parquet is not what the run in"):
        run_command(data=str(export), model="m", output=str(out), resume=True)


def test_report_to_a_tracker_that_is_not_installed_names_the_missing_package(export, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "dpo_train", no_training)
    with pytest.raises(CommandError, match="--report-to wandb needs the wandb package, which is not installed"):
        run_command(data=str(export), model="m", output=str(tmp_path / "o"), report_to="wandb")


def test_resume_with_other_training_settings_is_refused_naming_them(export, tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(services, "dpo_train", no_training)
    out = tmp_path / "o"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / "trainer_state.json").write_text("{}")
    saved = {"data": str(export), "model": "m", "output": str(out), "beta": 0.1, "num_threads": 2}
    (out / "run_config.json").write_text(json.dumps(saved))
    with pytest.raises(CommandError, match=r"these differ: --beta 0.1 -> 0.3\. Resume with the same settings"):
        run_command(data=str(export), model="m", output=str(out), resume=True, beta=0.3)
    # How it runs may change (threads, logging): that resume goes ahead to training.
    with pytest.raises(AssertionError, match="the model must not be loaded"):
        run_command(data=str(export), model="m", output=str(out), resume=True, num_threads=1)


def test_a_fresh_run_into_an_output_with_an_earlier_sft_warm_start_is_refused(export, tmp_path, monkeypatch):
    monkeypatch.setattr(services, "dpo_train", no_training)
    (tmp_path / "o" / "sft").mkdir(parents=True)
    with pytest.raises(CommandError, match="checkpoints or an SFT warm start: pass --resume"):
        run_command(data=str(export), model="m", output=str(tmp_path / "o"))


def test_a_model_without_a_tokenizer_is_a_clear_error(export, tmp_path):
    model = tmp_path / "not-a-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with pytest.raises(CommandError, match=r"--model .*not-a-model: no tokenizer could be loaded"):
        run_command(data=str(export), model=str(model), output=str(tmp_path / "o"))
    assert TrainingRun.objects.get().status == JobStatus.FAILED
