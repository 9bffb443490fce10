"""The annotation page sends a choice again when the server could not take it, and it is recorded once.

Real Chromium against a live server; Playwright stands between them to refuse the first submit (a 503, as
the server answers while the database is out of reach) or to cut the connection after the server recorded it.
"""

import time

import pytest
from django.urls import reverse

from annotator.models import Judgment
from tests.annotator.test_browser import browser, current_pair, expected_verdict, log_in, wait_for_new_pair
from tests.factories import make_campaign, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser]
__all__ = ["browser"]  # the fixture, shared with test_browser.py


def open_campaign(page, live_server, username: str, pairs: int = 3):
    user = make_user(username)
    campaign = make_campaign(f"Resend {username}", pairs=pairs)
    log_in(page, live_server, username)
    page.goto(live_server.url + reverse("annotator:annotate", args=[campaign.pk]))
    page.wait_for_function("document.querySelector('#pair').dataset.ready === '1'")
    page.evaluate("window.sameDocument = true")  # a full page load would wipe it
    return user, campaign


def test_a_choice_refused_with_503_is_sent_again_after_retry_after_and_recorded_once(live_server, browser):
    page = browser.new_page()
    user, campaign = open_campaign(page, live_server, "patient")
    sent: list[tuple[float, str]] = []

    def refuse_the_first(route):
        sent.append((time.monotonic(), route.request.post_data))
        if len(sent) == 1:
            route.fulfill(status=503, headers={"Retry-After": "1"}, content_type="text/html", body="Back in a moment")
        else:
            route.continue_()

    page.route("**" + reverse("annotator:judge", args=[campaign.pk]), refuse_the_first)
    first = current_pair(page)
    page.wait_for_timeout(300)  # some time on task
    page.keyboard.press("1")
    notice = page.locator("#connection-notice")
    notice.wait_for()
    assert notice.inner_text().startswith("Connection lost, retrying: your choice (Left is better) is kept")
    assert page.locator("#judge-form button[value=right]").is_disabled(), "no other choice while one waits"
    page.keyboard.press("2")  # ignored: the page is still sending the first choice

    second = wait_for_new_pair(page, first)
    assert second != first
    assert page.locator("#connection-notice").count() == 0, "the next pair replaced the notice"
    assert page.locator(".msg.success").inner_text() == "Recorded: left is better."
    assert page.evaluate("window.sameDocument") is True
    assert len(sent) == 2, "sent twice: refused, then accepted; the key pressed meanwhile sent nothing"
    assert sent[1][0] - sent[0][0] >= 1.0, "it waited as long as Retry-After asked"
    assert sent[1][1] == sent[0][1], "the same form both times: pair, choice, time on task"
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.comparison_id == int(first)
    assert judgment.verdict == expected_verdict(judgment, "left")
    assert f"duration_ms={judgment.duration_ms}" in sent[0][1]
    assert judgment.duration_ms >= 250


def test_a_choice_whose_answer_was_lost_is_sent_again_and_recorded_once(live_server, browser):
    page = browser.new_page()
    user, campaign = open_campaign(page, live_server, "unlucky")
    sent: list[str] = []

    def lose_the_first_answer(route):
        sent.append(route.request.post_data)
        if len(sent) == 1:
            route.fetch()  # the server records the choice ...
            route.abort("connectionreset")  # ... and its answer never arrives, as when the server is killed
        else:
            route.continue_()

    page.route("**" + reverse("annotator:judge", args=[campaign.pk]), lose_the_first_answer)
    first = current_pair(page)
    page.click("#judge-form button[value=right]")
    page.locator("#connection-notice").wait_for()
    assert Judgment.objects.filter(annotator=user).count() == 1, "recorded, though the page never heard so"

    wait_for_new_pair(page, first)
    assert len(sent) == 2
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.comparison_id == int(first)
    assert judgment.verdict == expected_verdict(judgment, "right")
    assert page.locator(".msg.success").count() == 0, "the resend was answered with the first judgment"


def test_a_choice_refused_otherwise_is_not_sent_again_and_the_page_says_so(live_server, browser):
    page = browser.new_page()
    user, campaign = open_campaign(page, live_server, "refused")
    sent: list[str] = []

    def fail_the_first(route):
        sent.append(route.request.post_data)
        if len(sent) == 1:
            route.fulfill(status=500, content_type="text/html", body="Server Error (500)")
        else:
            route.continue_()

    page.route("**" + reverse("annotator:judge", args=[campaign.pk]), fail_the_first)
    first = current_pair(page)
    page.keyboard.press("1")
    notice = page.locator("#connection-notice.msg.error")
    notice.wait_for()
    assert notice.inner_text() == "That did not go through (the server answered 500): try again."
    page.wait_for_timeout(1500)
    assert len(sent) == 1, "a server error is not a connection lost: nothing is sent again by itself"
    page.keyboard.press("2")  # keys work again
    wait_for_new_pair(page, first)
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.verdict == expected_verdict(judgment, "right")
