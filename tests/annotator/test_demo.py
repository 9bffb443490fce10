import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from annotator.models import Campaign, Comparison

pytestmark = pytest.mark.django_db


def log_in(username: str, password: str):
    return authenticate(RequestFactory().post("/accounts/login/"), username=username, password=password)


def test_load_demo_creates_logins_and_a_campaign_of_30_pairs_once(settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    call_command("load_demo", stdout=io.StringIO())
    campaign = Campaign.objects.get(name="Demo: assistant style")
    assert Comparison.objects.filter(prompt__campaign=campaign).count() == 30
    assert campaign.overlap == 2 and "Pick the response" in campaign.guidelines
    assert any(c.prompt.is_multi_turn for c in Comparison.objects.select_related("prompt"))
    assert log_in("alice", "alice-demo") is not None
    assert log_in("admin", "admin-demo").is_staff
    assert "alice  / alice-demo" in out.getvalue()


def test_load_demo_refuses_to_create_its_published_logins_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError) as refused:
        call_command("load_demo", stdout=io.StringIO())
    assert str(refused.value) == (
        "load_demo creates the superuser admin with the published password admin-demo, so it runs only with DEBUG "
        "on: DJANGO_DEBUG=1 manage.py load_demo (make demo sets it). On a throwaway server with DEBUG off, pass "
        "--allow-without-debug."
    )
    assert not Campaign.objects.exists()
    call_command("load_demo", "--allow-without-debug", stdout=io.StringIO())
    assert log_in("admin", "admin-demo").is_superuser
