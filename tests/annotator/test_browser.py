"""The annotation page in a real browser: Debian's Chromium driven by Playwright, against a live server."""

import os
import shutil

import pytest
from django.urls import reverse

from annotator.models import Judgment, Side
from tests.factories import add_pair, make_campaign, make_user

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags that keep Chromium off the network on a closed machine (see the machine notes in the README).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "Debian's Chromium is missing: `make test` installs it (apt-get install chromium)"
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def log_in(page, live_server, username):
    page.goto(live_server.url + reverse("login"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + reverse("annotator:campaign_list"))


def current_pair(page) -> str:
    return page.get_attribute("#pair", "data-comparison")


def wait_for_new_pair(page, previous: str) -> str:
    """Wait until another pair is shown and settled (its buttons wired to htmx)."""
    page.wait_for_function(
        "previous => { const pair = document.querySelector('#pair');"
        " return pair.dataset.comparison !== previous && pair.dataset.ready === '1'; }",
        arg=previous,
    )
    return current_pair(page)


def expected_verdict(judgment: Judgment, choice: str) -> str:
    if choice == "left":
        return judgment.shown_left
    if choice == "right":
        return Side.B if judgment.shown_left == Side.A else Side.A
    return choice


def test_annotator_judges_by_keyboard_and_click_and_undoes_one(live_server, browser):
    user = make_user("kim")
    campaign = make_campaign("Browser", pairs=6)
    page = browser.new_page()
    log_in(page, live_server, "kim")
    page.click(f"a[href='{reverse('annotator:annotate', args=[campaign.pk])}']")
    page.wait_for_selector("#judge-form")
    page.wait_for_load_state("load")
    page.evaluate("window.sameDocument = true")  # a full page load would wipe it

    done: dict[int, str] = {}
    pair = current_pair(page)
    page.wait_for_timeout(300)  # some time on task
    page.keyboard.press("1")
    done[int(pair)] = "left"
    pair = wait_for_new_pair(page, pair)

    page.keyboard.press("ArrowRight")
    done[int(pair)] = "right"
    pair = wait_for_new_pair(page, pair)

    page.click("#judge-form button[value=tie]")
    done[int(pair)] = "tie"
    pair = wait_for_new_pair(page, pair)

    page.click("#judge-form details.rationale summary")
    page.fill("#judge-form textarea[name=rationale]", "Both miss the point; typing 1 here must not submit.")
    assert current_pair(page) == pair, "keys typed into the rationale are text, not shortcuts"
    page.click("#judge-form button[value=both_bad]")
    done[int(pair)] = "both_bad"
    undone_pair = pair
    pair = wait_for_new_pair(page, pair)
    assert page.locator(".msg.success").inner_text() == "Recorded: both bad."

    page.keyboard.press("u")
    pair = wait_for_new_pair(page, pair)
    assert pair == undone_pair, "undo brings the last pair back"
    assert "Undone" in page.locator(".msg").inner_text()
    del done[int(undone_pair)]

    page.keyboard.press("s")
    done[int(pair)] = "skip"
    wait_for_new_pair(page, pair)

    assert page.evaluate("window.sameDocument") is True, "judging never reloads the page (htmx swaps the pair)"
    judgments = {j.comparison_id: j for j in Judgment.objects.filter(annotator=user)}
    assert set(judgments) == set(done)
    for comparison_id, choice in done.items():
        judgment = judgments[comparison_id]
        assert judgment.verdict == expected_verdict(judgment, choice)
        assert judgment.duration_ms is not None
    first = judgments[min(done)]
    assert first.duration_ms >= 250, "time on task measured in the browser"
    assert not Judgment.objects.filter(rationale__contains="must not submit").exists()


def test_the_page_works_without_javascript(live_server, browser):
    user = make_user("nojs")
    campaign = make_campaign("No JS", pairs=2)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server, "nojs")
    page.goto(live_server.url + reverse("annotator:annotate", args=[campaign.pk]))
    first = current_pair(page)
    page.click("#judge-form button[value=right]")
    page.wait_for_selector(".msg.success")
    assert current_pair(page) != first
    page.click("#undo")
    page.wait_for_selector(".msg.info")
    assert current_pair(page) == first
    page.click("#judge-form button[value=left]")
    page.wait_for_selector(".msg.success")
    judgment = Judgment.objects.get(annotator=user)
    assert judgment.comparison_id == int(first)
    assert judgment.verdict == judgment.shown_left
    context.close()


def test_script_in_a_response_shows_as_text_and_never_runs(live_server, browser):
    make_user("safe")
    campaign = make_campaign("XSS", pairs=0)
    add_pair(
        campaign,
        "Explain XSS",
        'Try <script>window.pwned = 1</script> or <img src=x onerror="window.pwned = 2">',
        'Use `<script>` tags carefully:\n\n```html\n<img src=x onerror="window.pwned = 3">\n```',
    )
    page = browser.new_page()
    log_in(page, live_server, "safe")
    page.goto(live_server.url + reverse("annotator:annotate", args=[campaign.pk]))
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    text = page.locator(".responses").inner_text()
    assert "<script>window.pwned = 1</script>" in text
    assert '<img src=x onerror="window.pwned = 3">' in text
    assert page.locator(".responses img").count() == 0


def test_guidelines_panel_toggles_with_g(live_server, browser):
    make_user("reader")
    campaign = make_campaign("Guided", pairs=1, guidelines="Prefer **accurate** answers.")
    page = browser.new_page()
    log_in(page, live_server, "reader")
    page.goto(live_server.url + reverse("annotator:annotate", args=[campaign.pk]))
    assert not page.locator("#guidelines").evaluate("el => el.open")
    page.keyboard.press("g")
    assert page.locator("#guidelines").evaluate("el => el.open")
    assert page.locator("#guidelines strong").inner_text() == "accurate"


def test_keys_pressed_while_the_next_pair_loads_are_ignored_not_posted(live_server, browser):
    user = make_user("quick")
    campaign = make_campaign("Quick", pairs=4)
    page = browser.new_page()
    log_in(page, live_server, "quick")
    page.goto(live_server.url + reverse("annotator:annotate", args=[campaign.pk]))
    # Functions, not bare expressions: Playwright evals an expression again on each poll, which the page's
    # Content-Security-Policy refuses (no 'unsafe-eval'); a function is evaluated once.
    page.wait_for_function("() => document.querySelector('#pair').dataset.ready === '1'")
    # Widen the window between a swap and its settling (htmx's default is 20 ms) so that the key below lands in
    # it however fast the machine: the race the test is about, made deterministic.
    page.evaluate("window.sameDocument = true; htmx.config.defaultSettleDelay = 500")
    first = current_pair(page)
    page.keyboard.press("1")
    # The next pair is in the page but not settled yet (its buttons not wired to htmx): press at once.
    page.wait_for_function("first => document.querySelector('#pair').dataset.comparison !== first", arg=first)
    page.keyboard.press("2")
    page.wait_for_function("() => document.querySelector('#pair').dataset.ready === '1'")
    page.wait_for_timeout(300)
    assert page.evaluate("window.sameDocument") is True
    assert list(Judgment.objects.filter(annotator=user).values_list("comparison_id", flat=True)) == [int(first)]


def test_strength_keys_record_a_side_and_how_much_better_it_is(live_server, browser):
    user = make_user("sam")
    campaign = make_campaign("Strength keys", pairs=5, ask_strength=True)
    page = browser.new_page()
    log_in(page, live_server, "sam")
    page.goto(live_server.url + reverse("annotator:annotate", args=[campaign.pk]))
    page.wait_for_selector("#pair[data-ready='1']")

    done: dict[int, tuple[str, str]] = {}
    pair = current_pair(page)
    for key, said in (("z", ("left", "clearly")), ("x", ("left", "slightly")), ("c", ("right", "slightly"))):
        page.keyboard.press(key)
        done[int(pair)] = said
        pair = wait_for_new_pair(page, pair)
    assert page.locator(".msg.success").inner_text() == "Recorded: right is slightly better."
    page.click("#judge-form button[value='right:clearly']")
    done[int(pair)] = ("right", "clearly")
    pair = wait_for_new_pair(page, pair)
    page.keyboard.press("1")  # a plain pick: no strength
    done[int(pair)] = ("left", "")
    page.wait_for_selector(".card.done")

    judgments = {j.comparison_id: j for j in Judgment.objects.filter(annotator=user)}
    assert {pk: (j.choice, j.strength) for pk, j in judgments.items()} == done


def test_e_opens_the_editor_which_starts_from_a_response_and_is_saved_with_the_pick(live_server, browser):
    user = make_user("eve")
    campaign = make_campaign("Edit keys", pairs=0, allow_edits=True)
    add_pair(campaign, "Name a prime.", "Four is **prime**.", "Nine.")
    page = browser.new_page()
    log_in(page, live_server, "eve")
    page.goto(live_server.url + reverse("annotator:annotate", args=[campaign.pk]))
    page.wait_for_selector("#pair[data-ready='1']")

    page.keyboard.press("e")
    assert page.evaluate("document.activeElement.name") == "edited_text"
    left_raw = page.evaluate("document.getElementById('raw-left').content.textContent")
    page.click("#edit button[data-edit-from=left]")
    assert page.input_value("#edit textarea") == left_raw, "the editor starts from the raw markdown"
    page.fill("#edit textarea", left_raw.replace("Four", "Two").replace("Nine.", "Two."))
    page.keyboard.press("Escape")  # leave the editor: keys are shortcuts again
    page.keyboard.press("1")
    page.wait_for_selector(".card.done")

    judgment = Judgment.objects.get(annotator=user)
    picked = judgment.comparison.candidate_a if judgment.shown_left == Side.A else judgment.comparison.candidate_b
    edit = picked.edits.get()
    assert edit.edited_by == user and edit.text == left_raw.replace("Four", "Two").replace("Nine.", "Two.")


def test_responses_are_ranked_by_number_keys_with_backspace_or_by_dragging(live_server, browser):
    import itertools

    from annotator.models import Ranking
    from annotator.services import candidate_create, comparison_create, prompt_get_or_create

    user = make_user("rae")
    campaign = make_campaign("Rank keys", pairs=0, rank_candidates=True)
    for p in range(2):
        prompt, _ = prompt_get_or_create(campaign=campaign, prompt=f"Question {p}?")
        candidates = [candidate_create(prompt=prompt, text=f"Answer {p}.{i}") for i in range(3)]
        for a, b in itertools.combinations(candidates, 2):
            comparison_create(candidate_a=a, candidate_b=b)
    page = browser.new_page()
    log_in(page, live_server, "rae")
    page.goto(live_server.url + reverse("annotator:annotate", args=[campaign.pk]))
    page.wait_for_selector("#pair[data-ready='1'] #rank-form")

    def shown_ids():
        return [
            int(x)
            for x in page.eval_on_selector_all("#ranked-list .rank-item", "els => els.map(e => e.dataset.candidate)")
        ]

    shown = shown_ids()
    page.keyboard.press("3")
    page.keyboard.press("1")
    page.keyboard.press("Backspace")  # takes back the 1
    page.keyboard.press("2")  # the last one (1) is ranked last by itself
    assert page.locator("#ranked-list .rank-badge").all_inner_texts() == ["#3", "#2", "#1"]
    pair = current_pair(page)
    page.keyboard.press("Enter")
    pair = wait_for_new_pair(page, pair)
    assert Ranking.objects.get(annotator=user).order == [shown[2], shown[1], shown[0]]
    assert page.locator(".msg.success").inner_text() == "Recorded: your ranking of 3 responses."

    shown = shown_ids()
    page.drag_and_drop("#ranked-list .rank-item:nth-child(3)", "#ranked-list .rank-item:nth-child(1)")
    page.click("#rank-submit")
    page.wait_for_selector(".card.done")
    second = Ranking.objects.filter(annotator=user).order_by("id").last()
    assert second.order == [shown[2], shown[0], shown[1]]
