import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.models import JobStatus
from exports.models import DatasetExport
from exports.services import dataset_export_create, dataset_export_run
from tests.exports.helpers import judge_all
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db

NOT_STAFF = {"detail": "This is for staff (admins) only. Ask an admin if you need access."}
ANONYMOUS = {"detail": "Authentication credentials were not provided."}


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def judged_campaign(db):
    campaign = make_campaign("Judged", pairs=20)
    judge_all(campaign, make_user("judge"), lambda c: "b")
    return campaign


@pytest.fixture
def finished_export(data_dir, judged_campaign):
    return dataset_export_run(export=dataset_export_create(campaign=judged_campaign, options={"val_fraction": 0.3}))


def endpoints(export: DatasetExport) -> list[tuple[str, str]]:
    return [
        ("post", f"/api/campaigns/{export.campaign_id}/exports/"),
        ("get", "/api/exports/"),
        ("get", f"/api/exports/{export.pk}/"),
        ("get", f"/api/exports/{export.pk}/files/train/"),
    ]


def test_anonymous_callers_get_401_on_every_endpoint(finished_export):
    for method, url in endpoints(finished_export):
        response = getattr(client_for(), method)(url, {}, format="json")
        assert response.status_code == 401, url
        assert response.json() == ANONYMOUS


def test_annotators_who_are_not_staff_get_403_on_every_endpoint(finished_export, annotator):
    for method, url in endpoints(finished_export):
        response = getattr(client_for(annotator), method)(url, {}, format="json")
        assert response.status_code == 403, url
        assert response.json() == NOT_STAFF
    assert DatasetExport.objects.count() == 1


def test_staff_start_an_export_and_get_202_with_its_id(data_dir, immediate_tasks, judged_campaign, staff):
    response = client_for(staff).post(
        f"/api/campaigns/{judged_campaign.pk}/exports/", {"val_fraction": 0.25, "seed": 5}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    export = DatasetExport.objects.get(pk=body["id"])
    assert (export.via, export.created_by, export.options["seed"]) == ("api", staff, 5)
    assert body["status"] == JobStatus.SUCCEEDED  # the immediate backend ran it within the request
    assert body["url"] == f"/api/exports/{export.pk}/"
    assert body["files"]["train"]["download"] == f"/api/exports/{export.pk}/files/train/"
    assert body["files"]["train"]["sha256"] == export.files["train"]["sha256"]


def test_an_export_started_without_a_worker_is_queued(data_dir, judged_campaign, staff):
    response = client_for(staff).post(f"/api/campaigns/{judged_campaign.pk}/exports/", {}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == JobStatus.QUEUED
    assert response.json()["options"]["format"] == "auto"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "csv"}, "format is 'csv': use one of auto, conversational, string, openai."),
        ({"min_votes": 0}, "min_votes is 0: use 1 or more."),
        ({"out_dir": "/etc"}, "Unknown option(s) out_dir: use "),
    ],
)
def test_bad_options_get_400_naming_the_option(data_dir, judged_campaign, staff, options, message):
    response = client_for(staff).post(f"/api/campaigns/{judged_campaign.pk}/exports/", options, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)
    assert not DatasetExport.objects.exists()


def test_options_must_be_a_json_object(data_dir, judged_campaign, staff):
    response = client_for(staff).post(f"/api/campaigns/{judged_campaign.pk}/exports/", [1, 2], format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Send the options as a JSON object")


def test_exporting_an_unknown_campaign_is_404(staff):
    response = client_for(staff).post("/api/campaigns/999999/exports/", {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "No campaign with id 999999."}


def test_an_export_that_fails_reports_why(data_dir, immediate_tasks, staff):
    campaign = make_campaign("Unjudged", pairs=2)
    response = client_for(staff).post(f"/api/campaigns/{campaign.pk}/exports/", {}, format="json")
    assert response.status_code == 202
    detail = client_for(staff).get(response.json()["url"]).json()
    assert detail["status"] == JobStatus.FAILED
    assert detail["error"].startswith("Nothing to export from campaign 'Unjudged'")
    assert detail["files"] == {}


def test_staff_list_exports_newest_first_in_a_constant_number_of_queries(finished_export, staff):
    client = client_for(staff)
    with CaptureQueriesContext(connection) as one:
        assert [e["id"] for e in client.get("/api/exports/").json()["results"]] == [finished_export.pk]
    for _ in range(4):
        dataset_export_create(campaign=finished_export.campaign, options={}, created_by=staff)
    with CaptureQueriesContext(connection) as five:
        listed = client.get("/api/exports/").json()["results"]
    assert len(listed) == 5
    assert listed[0]["created_by"] == "boss"
    assert listed[-1]["id"] == finished_export.pk
    assert len(five) == len(one)


def test_staff_read_one_export_with_counts_and_checksums(finished_export, staff):
    body = client_for(staff).get(f"/api/exports/{finished_export.pk}/").json()
    assert body["campaign_name"] == "Judged"
    assert body["stats"]["exported"] == 20
    assert body["stats"]["rows"]["train"] + body["stats"]["rows"]["validation"] == 20
    assert set(body["files"]) == {"train", "validation", "card"}


def test_staff_download_a_file_through_the_api(finished_export, staff):
    response = client_for(staff).get(f"/api/exports/{finished_export.pk}/files/validation/")
    assert response.status_code == 200
    with open(finished_export.files["validation"]["path"], "rb") as handle:
        assert b"".join(response.streaming_content) == handle.read()
    missing = client_for(staff).get(f"/api/exports/{finished_export.pk}/files/nope/")
    assert missing.status_code == 404
    assert missing.json()["detail"].startswith(f"Export {finished_export.pk} has no file 'nope'")
