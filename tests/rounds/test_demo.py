"""`make demo`'s round: a series on SmolLM2 with every setting filled in, ready to run from the page."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from rounds.models import Round, Step


@pytest.mark.slow
@pytest.mark.django_db
def test_load_demo_round_creates_a_ready_series_on_smollm2_once(smollm2_model, staff_client):
    out = io.StringIO()
    call_command("load_demo_round", stdout=out)
    call_command("load_demo_round", stdout=io.StringIO())
    round = Round.objects.get()
    assert "is ready to run from Rounds" in out.getvalue()
    assert round.step == Step.GENERATE and round.policy_model == str(smollm2_model)
    settings = round.series.options
    assert settings["labelled_by"] == settings["eval_labelled_by"] == "people"
    page = staff_client.get(reverse("rounds:round_detail", args=[round.pk]))
    assert page.status_code == 200 and "Generate pairs" in page.content.decode()
