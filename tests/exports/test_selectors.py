"""exports/selectors.py: an export's files, resolved from its record and checked against their sha256."""

import pytest

from exports.selectors import ExportFile, dataset_export_file, dataset_export_file_check
from exports.services import dataset_export_create, dataset_export_run
from tests.exports.helpers import judge_all
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def export(data_dir):
    campaign = make_campaign("Judged", pairs=4)
    judge_all(campaign, make_user("judge"), lambda c: "a")
    return dataset_export_run(export=dataset_export_create(campaign=campaign, options={"val_fraction": 0.0}))


def test_a_file_as_the_export_wrote_it_is_intact_and_served(export):
    train = dataset_export_file_check(export=export, name="train")
    assert train == ExportFile(path=train.path, on_disk=True, intact=True)
    assert str(train.path) == export.files["train"]["path"] and dataset_export_file(export=export, name="train")


def test_a_changed_file_is_on_disk_but_not_intact_and_a_deleted_one_is_not_on_disk(export):
    path = dataset_export_file_check(export=export, name="train").path
    path.write_bytes(path.read_bytes()[:-1] + b"x")  # same size, other bytes: only the sha256 tells
    assert dataset_export_file_check(export=export, name="train") == ExportFile(path, on_disk=True, intact=False)
    path.unlink()
    assert dataset_export_file_check(export=export, name="train") == ExportFile(path, on_disk=False, intact=False)
    assert dataset_export_file(export=export, name="train") is None


def test_a_file_the_export_did_not_write_has_no_path(export):
    assert dataset_export_file_check(export=export, name="validation") == ExportFile(None, False, False)


def test_the_campaign_shape_counts_pairs_by_how_their_responses_were_sampled(db):
    from annotator.models import Candidate
    from exports.selectors import campaign_conversations, campaign_shape
    from tests.factories import add_pair

    campaign = make_campaign("Shape", pairs=2, sampled="chat")
    add_pair(campaign, "Once upon a time", "A", "B", sampled="text")
    add_pair(campaign, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"},
                        {"role": "user", "content": "?"}], "C", "D")  # fmt: skip
    two_ways = add_pair(campaign, "Hello", "E", "F", sampled="chat")
    Candidate.objects.filter(pk=two_ways.candidate_b_id).update(prompt_format="text", prompt_text="Hello")
    shape = campaign_shape(campaign=campaign)
    assert (shape.pairs, shape.sampled) == (5, {"chat": 2, "text": 1, "": 1, "mixed": 1})
    assert campaign_conversations(campaign=campaign) == 1  # the imported multi-turn prompt: no string holds it
    assert shape.count("chat", "") == 3
