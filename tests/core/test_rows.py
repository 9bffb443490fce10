"""core.rows: models loaded from one plain SQL row read as the ORM reads them, on SQLite and PostgreSQL."""

from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from annotator.models import Assignment, Candidate, Comparison, Prompt, Side
from core.rows import Columns, load_all, select_list
from tests.factories import add_pair, make_campaign, make_user


def _every_field(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_instances_from_one_row_equal_the_orms_field_by_field(db):
    campaign = make_campaign("Rows", pairs=0)
    pair = add_pair(campaign, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                               {"role": "user", "content": "More?"}], "A", "B", system="Be brief.")  # fmt: skip
    Candidate.objects.filter(pk=pair.candidate_a_id).update(sampling_params={"temperature": 0.7}, seed=3)
    Comparison.objects.filter(pk=pair.pk).update(metadata={"round": 2, "tags": ["x"]}, settled=True)
    tables = (Columns(Comparison, "c"), Columns(Prompt, "p"), Columns(Candidate, "x"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select_list(tables)} FROM annotator_comparison c JOIN annotator_prompt p ON p.id = c.prompt_id "  # noqa: S608
            "JOIN annotator_candidate x ON x.id = c.candidate_a_id WHERE c.id = %s",
            [pair.pk],
        )
        comparison, prompt, candidate = load_all(tables, cursor.fetchone())
    assert _every_field(comparison) == _every_field(Comparison.objects.get(pk=pair.pk))
    assert comparison.metadata == {"round": 2, "tags": ["x"]} and comparison.settled is True
    assert _every_field(prompt) == _every_field(Prompt.objects.get(pk=pair.prompt_id))
    assert prompt.messages[-1] == {"role": "user", "content": "More?"}
    assert _every_field(candidate) == _every_field(Candidate.objects.get(pk=pair.candidate_a_id))
    assert candidate.sampling_params == {"temperature": 0.7}
    assert comparison.created_at.tzinfo is not None, "an aware datetime, as the ORM gives"
    assert not comparison._state.adding and comparison._state.db == "default", "saved instances, as the ORM's"


def test_a_lease_loaded_from_a_row_saves_like_one_the_orm_read(db):
    pair = add_pair(make_campaign("Lease", pairs=0), "Q?", "A", "B")
    lease = Assignment.objects.create(
        comparison=pair, annotator=make_user("ann"), shown_left=Side.B, served_at=timezone.now(),
        expires_at=timezone.now(),
    )  # fmt: skip
    table = Columns(Assignment, "a")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {table.sql} FROM annotator_assignment a WHERE a.id = %s", [lease.pk])  # noqa: S608
        loaded = table.load(cursor.fetchone())
    assert model_to_dict(loaded) == model_to_dict(Assignment.objects.get(pk=lease.pk))
    loaded.shown_left = Side.A
    loaded.save(update_fields=["shown_left"])
    assert Assignment.objects.get(pk=lease.pk).shown_left == Side.A
