"""Staff pages and API of rounds: who may see them, what they show, starting and advancing, and the messages."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django_tasks import default_task_backend

from core.models import JobStatus
from rounds.models import Round, RoundStep, Series, Step
from rounds.options import SeriesOptions
from rounds.services import round_run, round_step_create, series_start
from tests.factories import TINY_MODEL
from tests.rounds.conftest import EVAL_PROMPTS, TRAIN_PROMPTS

pytestmark = pytest.mark.django_db
STAFF_ONLY = "This is for staff (admins) only. Ask an admin if you need access."


@pytest.fixture(autouse=True)
def dummy_tasks(settings):
    """Queued steps stay queued: no worker runs them here."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    default_task_backend.clear()
    return default_task_backend


@pytest.fixture
def round(settings_for, data_dir) -> Round:
    return series_start(name="Stories", options=SeriesOptions.from_mapping(settings_for(labelled_by="people")))


@pytest.fixture
def done_round(settings_for, engines, fake_training, data_dir) -> Round:
    round = series_start(name="Done", options=SeriesOptions.from_mapping(settings_for()))
    return round_run(round=round, engines=engines)


def pages(round: Round) -> list[str]:
    return [
        reverse("rounds:series_index"),
        reverse("rounds:series_detail", args=[round.series_id]),
        reverse("rounds:round_detail", args=[round.pk]),
    ]


def test_anonymous_users_go_to_the_login_page_and_annotators_get_a_403_that_says_why(client, annotator_client, round):
    for url in pages(round):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
        response = annotator_client.get(url)
        assert response.status_code == 403 and STAFF_ONLY in response.content.decode()
    response = annotator_client.post(reverse("rounds:round_advance", args=[round.pk]))
    assert response.status_code == 403


def test_the_staff_nav_links_to_rounds(staff_client, round):
    page = staff_client.get(reverse("training:run_list")).content.decode()
    assert f'href="{reverse("rounds:series_index")}">Rounds</a>' in page


def test_a_round_page_shows_where_it_stands_and_what_is_left(staff_client, round, engines):
    round_run(round=round, engines=engines)  # generated; now people label
    response = staff_client.get(reverse("rounds:round_detail", args=[round.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "6 of 6 prompts sampled; 6 pairs" in page
    assert "0 of 6 pairs judged by people" in page
    assert "Label pairs: 0 of 6 pairs judged by people; 6 still wait for people." in page
    assert "People are done: go on with what they judged" in page
    assert 'hx-trigger="every 5s"' not in page  # nothing runs


def test_advancing_from_the_page_queues_the_step_and_the_page_then_polls_it(staff_client, round, dummy_tasks):
    url = reverse("rounds:round_advance", args=[round.pk])
    response = staff_client.post(url, {"chain": "on"}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Generate pairs and the next ones until people are needed: queued for the background worker." in page
    job = RoundStep.objects.get(round=round)
    assert (job.step, job.status, job.chain) == (Step.GENERATE, JobStatus.QUEUED, True)
    assert 'hx-trigger="every 5s"' in page and "Generate pairs: queued in the background." in page

    partial = staff_client.get(reverse("rounds:round_detail", args=[round.pk]), headers={"HX-Request": "true"})
    assert partial.content.decode().lstrip().startswith('<section id="status"')

    again = staff_client.post(url, follow=True).content.decode()
    assert f"Stories, round 1: generate pairs is queued (round step {job.pk}). Wait for it to finish." in again


def test_advancing_while_people_label_is_refused_until_staff_say_they_are_done(staff_client, round, engines):
    round_run(round=round, engines=engines)
    url = reverse("rounds:round_advance", args=[round.pk])
    page = staff_client.post(url, follow=True).content.decode()
    assert "6 still wait for people. Let them finish, or go on with what is judged." in page
    assert not RoundStep.objects.filter(round=round, step=Step.LABEL).exists()

    page = staff_client.post(url, {"anyway": "on"}, follow=True).content.decode()
    assert "Label pairs: queued for the background worker." in page


def test_a_failed_step_shows_its_error_and_a_retry_button(staff_client, round):
    job = round_step_create(round=round)
    RoundStep.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="RuntimeError: engine crashed")
    page = staff_client.get(reverse("rounds:round_detail", args=[round.pk])).content.decode()
    assert "Generate pairs failed: RuntimeError: engine crashed Retry it: it goes on from where it stopped." in page
    assert "Retry: Generate pairs" in page


def test_the_series_page_plots_the_win_rate_per_round_and_offers_the_next_round(staff_client, done_round):
    response = staff_client.get(reverse("rounds:series_detail", args=[done_round.series_id]))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'aria-label="Win rate of each round&#x27;s tuned model against its policy"' in page
    assert f"win rate at round 1: {done_round.win_rate:.4g}" in page
    assert 'aria-label="Win rate with its 95% interval"' in page
    assert "Start round 2" in page

    listed = staff_client.get(reverse("rounds:series_index")).content.decode()
    assert f'href="{reverse("rounds:round_detail", args=[done_round.pk])}">round 1</a>: Done' in listed
    assert f"<td>{done_round.win_rate:.2f}</td>" in listed

    response = staff_client.post(reverse("rounds:series_next_round", args=[done_round.series_id]), follow=True)
    assert f"Round 2 started: it samples from {done_round.tuned_model}." in response.content.decode()
    assert Round.objects.get(series=done_round.series, number=2).policy_model == done_round.tuned_model


def test_starting_a_second_round_before_the_first_is_done_is_refused_with_the_reason(staff_client, round):
    page = staff_client.post(reverse("rounds:series_next_round", args=[round.series_id]), follow=True)
    assert "Round 1 of &#x27;Stories&#x27; is at generate pairs, not done: finish it first" in page.content.decode()


def prompts_upload(name: str, prompts: list[str]) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "".join(json.dumps({"prompt": p}) + "\n" for p in prompts).encode())


def start_form(**fields) -> dict:
    return {
        "name": "From the web",
        "prompts": prompts_upload("train.jsonl", TRAIN_PROMPTS),
        "eval_prompts": prompts_upload("eval.jsonl", EVAL_PROMPTS),
        "base_model": str(TINY_MODEL),
        "labelled_by": "people",
        "eval_labelled_by": "people",
        "run_now": "on",
        **fields,
    }


def test_staff_start_a_series_from_the_page_and_its_first_steps_are_queued(staff_client, data_dir, dummy_tasks):
    response = staff_client.post(reverse("rounds:series_index"), start_form(n_epochs="3"), follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert f"Series &#x27;From the web&#x27; started: round 1 samples from {TINY_MODEL}." in page
    series = Series.objects.get(name="From the web")
    assert series.options["n_epochs"] == 3 and series.options["prompts_file"].startswith(str(data_dir))
    job = RoundStep.objects.get(round__series=series)
    assert (job.step, job.chain) == (Step.GENERATE, True)


def test_a_bad_setting_on_the_start_form_is_shown_on_its_field(staff_client, data_dir):
    response = staff_client.post(reverse("rounds:series_index"), start_form(labelled_by="ai", beta="5"))
    page = response.content.decode()
    assert response.status_code == 400
    assert "Judge model is missing: labelling by ai or both needs the AI judge&#x27;s model." in page
    assert "Beta is 5: it must be &gt; 0 and &lt;= 2" in page
    assert not Series.objects.exists()


def test_a_bad_prompts_file_on_the_start_form_names_its_row(staff_client, data_dir):
    bad = SimpleUploadedFile("train.jsonl", b'{"prompt": "fine"}\n{"nope": 1}\n')
    response = staff_client.post(reverse("rounds:series_index"), start_form(prompts=bad))
    assert response.status_code == 400
    assert "train.jsonl, line 2: field &#x27;prompt&#x27; is missing" in response.content.decode()


# --- API


def test_api_is_staff_only(client, annotator_client, round):
    url = reverse("api-round-detail", args=[round.pk])
    assert client.get(url).status_code in (401, 403)
    response = annotator_client.get(url)
    assert response.status_code == 403 and response.json()["detail"] == STAFF_ONLY


def test_api_round_shows_each_step_and_what_is_left(staff_client, round, engines):
    round_run(round=round, engines=engines)
    body = staff_client.get(reverse("api-round-detail", args=[round.pk])).json()
    assert body["step"] == "label" and body["policy_model"] == str(TINY_MODEL)
    assert body["next"].startswith("Label pairs: 0 of 6 pairs judged by people; 6 still wait for people.")
    generate, label = body["progress"][:2]
    assert generate["state"] == "done" and generate["job"]["status"] == "succeeded"
    assert (label["state"], label["detail"], label["job"]) == ("waiting", "0 of 6 pairs judged by people", None)


def test_api_advance_answers_202_then_409_with_the_reason(staff_client, round):
    url = reverse("api-round-advance", args=[round.pk])
    response = staff_client.post(url, {"chain": True}, content_type="application/json")
    assert response.status_code == 202 and response.json()["step"] == "generate" and response.json()["chain"] is True
    response = staff_client.post(url, {}, content_type="application/json")
    assert response.status_code == 409
    assert response.json()["detail"].endswith(
        "generate pairs is queued (round step " + f"{RoundStep.objects.get().pk}). Wait for it to finish."
    )


def test_api_starts_a_series_and_names_a_bad_setting(staff_client, settings_for, data_dir):
    url = reverse("api-round-series-list")
    response = staff_client.post(url, {"name": "API", "options": settings_for(beta=0)}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid round settings:\n  - beta is 0: it must be > 0 and <= 2")
    response = staff_client.post(url, {"name": "API", "options": settings_for()}, content_type="application/json")
    assert response.status_code == 201 and response.json()["number"] == 1 and response.json()["step"] == "generate"
    listed = staff_client.get(url).json()["results"]
    assert [s["name"] for s in listed] == ["API"] and listed[0]["rounds"][0]["number"] == 1


def test_api_lists_series_in_a_constant_number_of_queries(
    staff_client, settings_for, data_dir, django_assert_num_queries
):
    for name in ("One", "Two", "Three"):
        series_start(name=name, options=SeriesOptions.from_mapping(settings_for()))
    with django_assert_num_queries(5):  # session, user, how many series, the page (with their creator), their rounds
        response = staff_client.get(reverse("api-round-series-list"))
    assert response.status_code == 200 and len(response.json()["results"]) == 3
