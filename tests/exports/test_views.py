import pytest
from django.test import Client
from django.urls import reverse

from core.models import JobStatus
from exports.models import DatasetExport
from exports.services import dataset_export_create, dataset_export_run
from tests.exports.helpers import judge_all
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db

FORBIDDEN = "This is for staff (admins) only. Ask an admin if you need access."


@pytest.fixture
def finished_export(data_dir):
    campaign = make_campaign("Judged", pairs=20)
    judge_all(campaign, make_user("judge"), lambda c: "a")
    export = dataset_export_create(campaign=campaign, options={"val_fraction": 0.3})
    return dataset_export_run(export=export)


def pages(export: DatasetExport) -> list[str]:
    return [
        reverse("exports:list"),
        reverse("exports:create"),
        reverse("exports:detail", args=[export.pk]),
        reverse("exports:download", args=[export.pk, "train"]),
    ]


def test_anonymous_visitors_are_sent_to_log_in_on_every_page(finished_export):
    for url in pages(finished_export):
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next=")


def test_annotators_who_are_not_staff_get_403_with_a_reason_on_every_page(finished_export, annotator_client):
    for url in pages(finished_export):
        response = annotator_client.get(url)
        assert response.status_code == 403, url
        assert FORBIDDEN in response.content.decode()
    response = annotator_client.post(reverse("exports:create"), {"campaign": finished_export.campaign_id})
    assert response.status_code == 403
    assert DatasetExport.objects.count() == 1


def test_staff_list_shows_who_when_options_counts_checksums_and_download_links(finished_export, staff_client):
    response = staff_client.get(reverse("exports:list"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Judged" in page
    assert "Succeeded" in page
    assert "command line" in page  # started with no user, as the command does without --user
    assert "auto, judges humans, val 0.3, seed 0" in page
    assert f"{finished_export.stats['rows']['train']} train · {finished_export.stats['rows']['validation']} val" in page
    assert finished_export.files["train"]["sha256"][:12] in page
    assert reverse("exports:download", args=[finished_export.pk, "validation"]) in page


def test_staff_detail_shows_files_with_sha256_and_what_was_left_out(finished_export, staff_client):
    page = staff_client.get(reverse("exports:detail", args=[finished_export.pk])).content.decode()
    for name in ("train", "validation", "card"):
        assert finished_export.files[name]["sha256"] in page
        assert reverse("exports:download", args=[finished_export.pk, name]) in page
    assert "dropped: tie" in page
    assert 'http-equiv="refresh"' not in page


def test_download_streams_the_file_as_an_attachment(finished_export, staff_client):
    response = staff_client.get(reverse("exports:download", args=[finished_export.pk, "train"]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="train.parquet"'
    with open(finished_export.files["train"]["path"], "rb") as handle:
        assert b"".join(response.streaming_content) == handle.read()


def test_download_of_a_file_the_export_does_not_have_is_404_with_a_reason(finished_export, staff_client):
    for name in ("../../etc/passwd", "nope", "test"):
        response = staff_client.get(f"/exports/{finished_export.pk}/files/{name}/")
        assert response.status_code == 404
    response = staff_client.get(reverse("exports:download", args=[finished_export.pk, "nope"]))
    assert f"Export {finished_export.pk} has no file &#x27;nope&#x27; as it wrote it" in response.content.decode()


def test_a_file_replaced_by_a_later_export_into_the_same_directory_is_not_served_as_this_one(
    finished_export, staff_client
):
    train = finished_export.files["train"]["path"]
    with open(train, "ab") as handle:
        handle.write(b"changed")
    response = staff_client.get(reverse("exports:download", args=[finished_export.pk, "train"]))
    assert response.status_code == 404
    assert "replaced by a later export into the same directory" in response.content.decode()


def test_new_export_form_preselects_the_campaign(staff_client):
    campaign = make_campaign("Pick me", pairs=1)
    make_campaign("Other", pairs=1)
    page = staff_client.get(reverse("exports:create") + f"?campaign={campaign.pk}").content.decode()
    assert f'<option value="{campaign.pk}" selected>Pick me</option>' in page


def test_staff_start_an_export_from_the_web_and_download_it_when_done(data_dir, immediate_tasks, staff, staff_client):
    campaign = make_campaign("Web", pairs=10)
    judge_all(campaign, make_user("ann"), lambda c: "b")
    response = staff_client.post(
        reverse("exports:create"),
        {"campaign": campaign.pk, "format": "auto", "judges": "humans", "val_fraction": "0", "seed": "4",
         "min_votes": "1", "min_agreement": "0"},
    )  # fmt: skip
    export = DatasetExport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("exports:detail", args=[export.pk])
    assert (export.status, export.via, export.created_by) == (JobStatus.SUCCEEDED, "web", staff)
    assert export.out_dir == str(data_dir / "exports" / str(export.pk))
    page = staff_client.get(response["Location"]).content.decode()
    assert f"Export {export.pk} of &#x27;Web&#x27; started." in page
    assert "Download train" in page
    download = staff_client.get(reverse("exports:download", args=[export.pk, "card"]))
    assert b"# Preferences from campaign" in b"".join(download.streaming_content)


def test_a_queued_export_page_says_so_and_reloads_itself(data_dir, staff_client):
    campaign = make_campaign("Queued", pairs=1)
    response = staff_client.post(reverse("exports:create"), {"campaign": campaign.pk, "format": "auto",
                                 "judges": "humans", "val_fraction": "0.1", "seed": "0", "min_votes": "1",
                                 "min_agreement": "0"})  # fmt: skip
    page = staff_client.get(response["Location"]).content.decode()
    assert "Queued" in page
    assert '<meta http-equiv="refresh" content="3">' in page


def test_bad_options_in_the_form_are_shown_and_nothing_is_started(data_dir, staff_client):
    campaign = make_campaign("Bad", pairs=1)
    response = staff_client.post(reverse("exports:create"), {"campaign": campaign.pk, "format": "auto",
                                 "judges": "humans", "val_fraction": "0.1", "seed": "0", "min_votes": "1",
                                 "min_agreement": "2"})  # fmt: skip
    assert response.status_code == 400
    assert "Min agreement is 2.0: use a share in [0, 1], e.g. 0.66." in response.content.decode()
    assert not DatasetExport.objects.exists()


def test_a_failed_export_page_shows_why(data_dir, immediate_tasks, staff_client):
    campaign = make_campaign("Unjudged", pairs=2)
    response = staff_client.post(reverse("exports:create"), {"campaign": campaign.pk, "format": "auto",
                                 "judges": "humans", "val_fraction": "0.1", "seed": "0", "min_votes": "1",
                                 "min_agreement": "0"})  # fmt: skip
    export = DatasetExport.objects.get()
    assert export.status == JobStatus.FAILED
    page = staff_client.get(response["Location"]).content.decode()
    assert "Failed" in page
    assert "Nothing to export from campaign &#x27;Unjudged&#x27;" in page
    assert "No file was written: judge some pairs first." in page
