"""Staff pages and API for training runs: permissions, what a run's page shows, starting a run from the web."""

import pytest
from django.urls import reverse
from django_tasks import default_task_backend

from core.checksums import file_sha256
from core.models import JobStatus
from exports.models import DatasetExport
from tests.factories import make_campaign
from tests.training.helpers import ROW, write
from training.models import TrainingRun
from training.tasks import train_dpo_task

pytestmark = pytest.mark.django_db


def make_run(**fields) -> TrainingRun:
    values = {
        "status": JobStatus.SUCCEEDED,
        "config": {"beta": 0.1, "n_epochs": 3, "lora": False},
        "dataset_path": "/data/export-7",
        "dataset_sha256": "ab" * 32,
        "dataset_files": {"train": {"path": "/data/export-7/train.parquet", "rows": 54, "sha256": "ab" * 32}},
        "base_model": "../shared/models/stories260K",
        "output_dir": "/out/run",
        "global_step": 3,
        "final_metrics": {"eval_rewards/accuracies": 0.675, "train_loss": 0.23},
        **fields,
    }
    run = TrainingRun.objects.create(**values)
    for step in (1, 2, 3):
        values = {"loss": 0.7 / step, "rewards/accuracies": step / 3, "rewards/margins": step * 0.5}
        run.metrics.create(split="train", step=step, values=values)
    run.metrics.create(split="eval", step=3, values={"loss": 0.49, "rewards/accuracies": 0.675, "rewards/margins": 0.6})
    return run


@pytest.fixture
def run(db) -> TrainingRun:
    return make_run()


PAGES = [("training:run_list", False), ("training:run_detail", True), ("training:run_create", False)]


@pytest.mark.parametrize(("name", "needs_pk"), PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, run, name, needs_pk):
    url = reverse(name, args=[run.pk] if needs_pk else [])
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("name", "needs_pk"), PAGES)
def test_annotators_get_a_403_that_says_the_pages_are_for_staff(annotator_client, run, name, needs_pk):
    response = annotator_client.get(reverse(name, args=[run.pk] if needs_pk else []))
    assert response.status_code == 403
    assert "This is for staff (admins) only. Ask an admin if you need access." in response.content.decode()


def test_staff_see_the_list_of_runs_with_status_and_accuracy(staff_client, run):
    make_run(status=JobStatus.FAILED, error="The loss became nan at step 2: training stopped.")
    response = staff_client.get(reverse("training:run_list"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Succeeded" in page and "Failed" in page and "0.675" in page
    assert "The loss became nan at step 2" in page


def test_run_page_shows_config_data_and_plots_of_loss_accuracy_and_margin(staff_client, run):
    response = staff_client.get(reverse("training:run_detail", args=[run.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    for title in ("Loss", "Reward accuracy", "Reward margin (chosen - rejected)"):
        assert f'aria-label="{title}"' in page
    assert page.count("<svg") == 3
    assert "<polyline" in page  # the train curve
    assert "validation at step 3: 0.675" in page  # the eval point, with its tooltip
    assert "Reward of chosen responses: no data yet." in page  # logged by TRL, not by this fake run
    assert "ab" * 32 in page and "/data/export-7/train.parquet" in page
    assert "validation reward accuracy" in page
    assert '<meta http-equiv="refresh"' not in page


def test_a_running_run_page_reloads_itself_and_a_failed_one_shows_its_error(staff_client):
    running = make_run(status=JobStatus.RUNNING, final_metrics={})
    failed = make_run(status=JobStatus.FAILED, error="Export 3 is running, not succeeded")
    assert (
        '<meta http-equiv="refresh"'
        in staff_client.get(reverse("training:run_detail", args=[running.pk])).content.decode()
    )
    page = staff_client.get(reverse("training:run_detail", args=[failed.pk])).content.decode()
    assert "Export 3 is running, not succeeded" in page


def test_unknown_run_is_a_404(staff_client):
    assert staff_client.get(reverse("training:run_detail", args=[999])).status_code == 404


# --- API


def test_api_is_staff_only(client, annotator_client, run):
    url = reverse("api-training-run-list")
    assert client.get(url).status_code in (401, 403)
    response = annotator_client.get(url)
    assert response.status_code == 403
    assert response.json()["detail"] == "This is for staff (admins) only. Ask an admin if you need access."


def test_api_lists_runs_in_a_constant_number_of_queries(staff_client, run, django_assert_num_queries):
    make_run()
    make_run()
    with django_assert_num_queries(4):  # session, user, how many runs, the page (with their creator and export)
        response = staff_client.get(reverse("api-training-run-list"))
    assert response.status_code == 200
    body = response.json()["results"]
    assert len(body) == 3 and body[-1]["id"] == run.pk
    assert body[-1]["validation_reward_accuracy"] == 0.675 and "metrics" not in body[-1]


def test_api_detail_has_config_files_final_metrics_and_metrics_by_step(staff_client, run):
    response = staff_client.get(reverse("api-training-run-detail", args=[run.pk]))
    assert response.status_code == 200
    body = response.json()
    assert body["config"]["beta"] == 0.1 and body["dataset_files"]["train"]["rows"] == 54
    assert body["final_metrics"]["eval_rewards/accuracies"] == 0.675
    assert [(m["split"], m["step"]) for m in body["metrics"]] == [("train", 1), ("train", 2), ("train", 3), ("eval", 3)]


# --- starting a run from the web


@pytest.fixture
def export(tmp_path) -> DatasetExport:
    train = write(tmp_path / "train.parquet", [ROW] * 4)
    return DatasetExport.objects.create(
        campaign=make_campaign("Stories", pairs=0),
        status=JobStatus.SUCCEEDED,
        out_dir=str(tmp_path),
        files={"train": {"path": str(train), "rows": 4, "sha256": file_sha256(train)}},
    )


@pytest.fixture
def dummy_tasks(settings, tmp_path):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    settings.DATA_DIR = tmp_path / "data"
    default_task_backend.clear()
    return default_task_backend


def form_data(export, **values):
    return {
        "export": export.pk,
        "model": "../shared/models/stories260K",
        "n_epochs": 3,
        "beta": 0.1,
        "batch_size": 8,
        "max_length": 256,
        "loss_type": "sigmoid",
        "sft_epochs": 0,
        **values,
    }


def test_staff_start_a_run_from_the_form_and_it_is_queued_for_the_worker(
    staff_client, staff, export, dummy_tasks, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("training:run_create"), form_data(export, learning_rate=5e-4))
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training:run_detail", args=[run.pk])
    assert (run.status, run.export_id, run.created_by) == (JobStatus.QUEUED, export.pk, staff)
    assert run.config["learning_rate"] == 5e-4
    assert run.output_dir.startswith(str(settings.DATA_DIR / "training"))
    [result] = dummy_tasks.results
    assert result.task.name == train_dpo_task.name and result.kwargs == {"run_id": run.pk}


def test_a_bad_option_in_the_form_shows_the_configuration_error(staff_client, export, dummy_tasks):
    response = staff_client.post(reverse("training:run_create"), form_data(export, beta=5))
    assert response.status_code == 400
    assert "Beta is 5: it must be &gt; 0 and &lt;= 2" in response.content.decode()
    assert not TrainingRun.objects.exists() and not dummy_tasks.results


def test_the_task_runs_a_queued_run_through_the_training_service(staff_client, export, dummy_tasks, fake_training):
    with_commit = staff_client.post(reverse("training:run_create"), form_data(export, learning_rate=5e-4))
    assert with_commit.status_code == 302
    run = TrainingRun.objects.get()
    assert train_dpo_task.call(run_id=run.pk) == run.pk
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.metrics.count() == 2
    assert fake_training[0]["config"].learning_rate == 5e-4


def test_the_task_marks_the_run_failed_when_its_data_changed_meanwhile(staff_client, export, dummy_tasks, tmp_path):
    staff_client.post(reverse("training:run_create"), form_data(export))
    run = TrainingRun.objects.get()
    write(tmp_path / "train.parquet", [ROW] * 5)  # the export's file is no longer the one it recorded
    train_dpo_task.call(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "has changed since the export" in run.error


def test_staff_get_the_new_run_form_offering_finished_exports(staff_client, export):
    response = staff_client.get(reverse("training:run_create"))
    page = response.content.decode()
    assert response.status_code == 200
    assert f'<option value="{export.pk}">Export {export.pk} of Stories (succeeded)</option>' in page
    assert "Start training" in page
    assert "Must be &gt; 0 and &lt;= 2" in page  # the options explain themselves, from DPORunConfig
