import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from annotator.models import Campaign, Comparison

pytestmark = pytest.mark.django_db


def test_load_demo_creates_logins_and_a_campaign_of_30_pairs_once():
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    call_command("load_demo", stdout=io.StringIO())
    campaign = Campaign.objects.get(name="Demo: assistant style")
    assert Comparison.objects.filter(prompt__campaign=campaign).count() == 30
    assert campaign.overlap == 2 and "Pick the response" in campaign.guidelines
    assert any(c.prompt.is_multi_turn for c in Comparison.objects.select_related("prompt"))
    assert authenticate(username="alice", password="alice-demo") is not None
    assert authenticate(username="admin", password="admin-demo").is_staff
    assert "alice  / alice-demo" in out.getvalue()
