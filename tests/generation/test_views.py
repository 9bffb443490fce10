import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.models import Comparison
from annotator.services import campaign_create
from core.models import JobStatus
from core.permissions import STAFF_ONLY
from generation import services
from generation.models import GenerationRun
from generation.run_config import RunConfig
from generation.tasks import generation_run_task
from tests.factories import TINY_MODEL
from tests.generation.conftest import STORY_PROMPTS, FakeBackend
from tests.llm.openai_fake import MODEL as SERVED_MODEL
from tests.llm.openai_fake import FakeOpenAIServer

pytestmark = pytest.mark.django_db

PROMPTS_JSONL = "".join(f'{{"prompt": "{p}"}}\n' for p in STORY_PROMPTS[:3]).encode()


@pytest.fixture(autouse=True)
def _tasks_run_immediately(settings, tmp_path, transactional_db):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.DATA_DIR = tmp_path


@pytest.fixture
def stories(db):
    return campaign_create(name="Stories")


def start_form(stories, **fields):
    return {
        "campaign": stories.pk,
        "model": str(TINY_MODEL),
        "backend": "transformers",
        "prompts": SimpleUploadedFile("prompts.jsonl", PROMPTS_JSONL),
        "n": 2,
        "temperatures": "0.7,1.1",
        "top_p": "1.0",
        "max_tokens": 16,
        "seed": 0,
        **fields,
    }


def test_annotators_get_403_with_a_reason_and_cannot_start_generation(annotator_client, stories):
    response = annotator_client.get(reverse("generation:run_list"))
    assert response.status_code == 403
    assert STAFF_ONLY in response.content.decode()
    response = annotator_client.post(reverse("generation:run_start"), start_form(stories))
    assert response.status_code == 403
    assert not GenerationRun.objects.exists()


def test_anonymous_visitors_go_to_the_login_page(client, stories):
    response = client.get(reverse("generation:run_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not GenerationRun.objects.exists()


def test_staff_see_recent_runs_with_status_and_counts(staff_client, stories):
    GenerationRun.objects.create(
        campaign=stories,
        status=JobStatus.SUCCEEDED,
        config={"model": "base-model", "backend": "vllm"},
        stats={"prompts": 10, "generated": 8, "candidates": 16, "comparisons": 8, "skipped_too_long": 2},
    )
    response = staff_client.get(reverse("generation:run_list"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Start generation" in page
    assert "base-model" in page
    assert "8 / 10" in page
    assert "Succeeded" in page


def test_a_bad_model_path_is_shown_on_the_form_and_nothing_is_queued(staff_client, stories):
    response = staff_client.post(reverse("generation:run_start"), start_form(stories, model="/no/such/model"))
    assert response.status_code == 400
    assert "Model /no/such/model: no such folder" in response.content.decode()
    assert not GenerationRun.objects.exists()


def test_a_bad_prompts_file_is_shown_on_the_form(staff_client, stories):
    bad = SimpleUploadedFile("prompts.jsonl", b'{"prompt": "ok"}\n{"nope": 1}\n')
    response = staff_client.post(reverse("generation:run_start"), start_form(stories, prompts=bad))
    assert response.status_code == 400
    assert "prompts.jsonl, line 2: field &#x27;prompt&#x27; is missing" in response.content.decode()
    assert not GenerationRun.objects.exists()


def test_staff_cannot_send_the_servers_key_to_a_url_the_setting_does_not_list(staff_client, stories, settings):
    settings.OPENAI_BASE_URLS = ["http://127.0.0.1:8000/v1"]
    fields = {"backend": "openai", "model": "served", "base_url": "http://169.254.169.254/latest"}
    response = staff_client.post(reverse("generation:run_start"), start_form(stories, **fields))
    assert response.status_code == 400
    page = response.content.decode()
    assert (
        "Server URL http://169.254.169.254/latest is not a server this site may send requests to: it sends them (with "
        "its OPENAI_API_KEY) only to the servers the PREFSTUDIO_OPENAI_BASE_URLS setting lists, which are: "
        "http://127.0.0.1:8000/v1."
    ) in page
    assert not GenerationRun.objects.exists()
    assert not (settings.DATA_DIR / "generation").exists()  # the upload was not kept either


def test_a_run_on_an_allowed_server_that_fails_shows_the_status_not_what_the_server_wrote(
    staff_client, stories, settings, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-sites-key")
    with FakeOpenAIServer() as server:
        settings.OPENAI_BASE_URLS = [server.url]
        for path in ("/v1/chat/completions", "/v1/completions"):
            server.reply(path, 500, "<html><h1>Internal admin</h1>db password: hunter2</html>")
        fields = {"backend": "openai", "model": SERVED_MODEL, "base_url": server.url}
        response = staff_client.post(reverse("generation:run_start"), start_form(stories, **fields), follow=True)
    assert response.status_code == 200
    run = GenerationRun.objects.get()
    assert run.status == JobStatus.FAILED
    assert (
        "line 1: The server failed a request for 'fake-model': HTTP 500 from the server (Internal Server Error))"
        in (run.error)
    )
    page = response.content.decode()
    assert "The server failed a request for &#x27;fake-model&#x27;: HTTP 500 from the server" in page
    assert "admin" not in run.error and "hunter2" not in page
    assert {r["authorization"] for r in server.received} == {"Bearer sk-the-sites-key"}


def test_the_task_executes_a_queued_run_with_the_same_service(stories, prompts_file, monkeypatch):
    monkeypatch.setattr(services, "backend_load", lambda **kwargs: FakeBackend())
    run = services.generation_run_create(
        campaign_name="Stories", config=RunConfig(model=str(TINY_MODEL), prompts_file=str(prompts_file))
    )
    result = generation_run_task.enqueue(run_id=run.pk)
    assert result.return_value["comparisons"] == len(STORY_PROMPTS)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED


@pytest.mark.slow
def test_staff_start_a_run_that_the_worker_executes_on_the_tiny_model(staff_client, staff, stories, engine_env):
    response = staff_client.post(reverse("generation:run_start"), start_form(stories), follow=True)
    assert response.status_code == 200
    run = GenerationRun.objects.get()
    assert f"Generation run {run.pk} queued for campaign &#x27;Stories&#x27;." in response.content.decode()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.created_by == staff
    assert run.task_id
    assert run.stats["comparisons"] == 3
    assert Comparison.objects.filter(prompt__campaign=stories).count() == 3
    assert Comparison.objects.first().candidate_a.backend == "transformers"


def test_the_admin_lists_runs_with_their_counts_and_links_to_the_start_page(staff_client, stories):
    GenerationRun.objects.create(
        campaign=stories, config={"model": "m", "backend": "openai"}, stats={"prompts": 4, "generated": 1}
    )
    response = staff_client.get(reverse("admin:generation_generationrun_changelist"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "1 / 4" in page
    assert reverse("generation:run_list") in page
