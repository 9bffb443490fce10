import io
import json

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotator.models import Assignment, Campaign, Candidate, Judgment, Side, Verdict, WithdrawnJudgment
from annotator.services import assignment_next
from tests.factories import make_campaign, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(annotator) -> APIClient:
    client = APIClient()
    client.force_authenticate(annotator)
    return client


@pytest.fixture
def staff_api(staff) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


def next_url(campaign: Campaign) -> str:
    return reverse("api-campaign-next", args=[campaign.pk])


def judge_url(comparison_id: int) -> str:
    return reverse("api-judgment-create", args=[comparison_id])


def test_every_endpoint_refuses_anonymous_callers(campaign):
    client = APIClient()
    comparison = campaign.prompts.first().comparisons.first()
    for method, url in [
        ("get", reverse("api-campaign-list")),
        ("get", next_url(campaign)),
        ("get", reverse("api-campaign-progress", args=[campaign.pk])),
        ("post", reverse("api-campaign-undo", args=[campaign.pk])),
        ("post", judge_url(comparison.pk)),
        ("post", reverse("api-pairs-import")),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 401, url
        assert response.json()["detail"] == "Authentication credentials were not provided."


def test_token_authentication_works(campaign, annotator):
    token = Token.objects.create(user=annotator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get(reverse("api-campaign-list"))
    assert response.status_code == 200
    assert [c["name"] for c in response.json()["results"]] == ["Helpfulness"]


def test_campaign_list_gives_id_and_name_without_n_plus_one_queries(api, annotator):
    for i in range(5):
        make_campaign(f"C{i}", pairs=2)
    with CaptureQueriesContext(connection) as queries:
        response = api.get(reverse("api-campaign-list"))
    assert response.status_code == 200
    assert [(c["id"], c["name"]) for c in response.json()["results"]] == [
        (c.pk, c.name) for c in Campaign.objects.order_by("name")
    ]
    assert len(queries) <= 2, [q["sql"] for q in queries]  # the count, the page


def test_campaign_list_counts_the_pairs_the_caller_judged_or_skipped(api, campaign, other_annotator):
    for choice in ("left", "skip"):
        api.post(judge_url(api.get(next_url(campaign)).json()["id"]), {"choice": choice})
    other = APIClient()
    other.force_authenticate(other_annotator)
    other.post(judge_url(other.get(next_url(campaign)).json()["id"]), {"choice": "right"})
    assert [(c["name"], c["judged_by_me"]) for c in api.get(reverse("api-campaign-list")).json()["results"]] == [
        ("Helpfulness", 2)
    ]
    assert other.get(reverse("api-campaign-list")).json()["results"][0]["judged_by_me"] == 1


def test_next_returns_the_documented_shape(api, campaign):
    response = api.get(next_url(campaign))
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"id", "prompt", "left", "right"}
    assert body["prompt"][-1]["role"] == "user"
    assert set(body["left"]) == {"id", "text", "truncated"} and set(body["right"]) == {"id", "text", "truncated"}
    assert body["left"]["id"] != body["right"]["id"]
    assert body["left"]["truncated"] is body["right"]["truncated"] is False


def test_next_says_which_response_was_cut_off_at_its_token_limit(api):
    from tests.factories import add_pair

    campaign = make_campaign("Cut", pairs=0)
    pair = add_pair(campaign, "Tell a story", "Once upon a time there was a", "The end.")
    Candidate.objects.filter(pk=pair.candidate_a_id).update(finish_reason="length")
    Candidate.objects.filter(pk=pair.candidate_b_id).update(finish_reason="stop")
    body = api.get(next_url(campaign)).json()
    truncated = {side["text"]: side["truncated"] for side in (body["left"], body["right"])}
    assert truncated == {"Once upon a time there was a": True, "The end.": False}


def test_next_includes_the_system_message_first(api):
    from tests.factories import add_pair

    campaign = make_campaign("Sys", pairs=0)
    add_pair(campaign, "Hi", "A", "B", system="Be brief.")
    body = api.get(next_url(campaign)).json()
    assert body["prompt"][0] == {"role": "system", "content": "Be brief."}


def test_judging_through_the_api_maps_sides_and_repeats_are_not_duplicated(api, annotator, campaign):
    pair = api.get(next_url(campaign)).json()
    response = api.post(judge_url(pair["id"]), {"choice": "right", "rationale": "clearer", "duration_ms": 1500})
    assert response.status_code == 201
    body = response.json()
    judgment = Judgment.objects.get(pk=body["id"])
    right_is_a = pair["right"]["id"] == judgment.comparison.candidate_a_id
    assert judgment.verdict == (Verdict.A if right_is_a else Verdict.B)
    assert judgment.shown_left == (Side.B if right_is_a else Side.A)
    assert body["choice"] == "right" and body["duration_ms"] == 1500
    repeat = api.post(judge_url(pair["id"]), {"choice": "left"})
    assert repeat.status_code == 200
    assert repeat.json()["id"] == body["id"] and repeat.json()["choice"] == "right"
    assert Judgment.objects.filter(annotator=annotator).count() == 1


def test_next_is_204_when_nothing_is_left(api):
    campaign = make_campaign("One", pairs=1)
    pair = api.get(next_url(campaign)).json()
    assert api.post(judge_url(pair["id"]), {"choice": "skip"}).status_code == 201
    response = api.get(next_url(campaign))
    assert response.status_code == 204
    assert response.content == b""
    assert "Retry-After" not in response, "nothing can come back: done"


def test_next_is_204_with_retry_after_while_someone_else_holds_the_last_pair(api):
    campaign = make_campaign("Held", pairs=1, overlap=1)
    assignment_next(campaign=campaign, annotator=make_user("holder"))
    response = api.get(next_url(campaign))
    assert response.status_code == 204
    assert 0 < int(response["Retry-After"]) <= settings.ANNOTATION_LEASE_SECONDS


def test_judging_a_pair_not_handed_out_is_a_409_with_the_fix(api, campaign):
    comparison = campaign.prompts.first().comparisons.first()
    response = api.post(judge_url(comparison.pk), {"choice": "left"})
    assert response.status_code == 409
    assert f"ask for the next pair first (GET /api/campaigns/{campaign.pk}/next/)" in response.json()["detail"]


def test_bad_choice_is_a_400_naming_the_field(api, campaign):
    pair = api.get(next_url(campaign)).json()
    response = api.post(judge_url(pair["id"]), {"choice": "middle"})
    assert response.status_code == 400
    assert response.json() == {"choice": ['"middle" is not a valid choice.']}
    response = api.post(judge_url(pair["id"]), {"choice": "left", "duration_ms": -5})
    assert response.status_code == 400
    assert "duration_ms" in response.json()


def test_annotators_cannot_reach_campaigns_they_are_not_part_of(api, other_annotator):
    private = make_campaign("Private", pairs=1)
    private.annotators.add(other_annotator)
    comparison = private.prompts.first().comparisons.first()
    assert api.get(next_url(private)).status_code == 404
    assert api.post(judge_url(comparison.pk), {"choice": "left"}).status_code == 404
    assert api.get(reverse("api-campaign-list")).json()["results"] == []


def undo_url(campaign: Campaign) -> str:
    return reverse("api-campaign-undo", args=[campaign.pk])


def test_undo_and_progress(api, campaign):
    pair = api.get(next_url(campaign)).json()
    judged = api.post(judge_url(pair["id"]), {"choice": "left", "rationale": "clearer"}).json()
    assert api.get(reverse("api-campaign-progress", args=[campaign.pk])).json() == {
        "done": 1,
        "remaining": 2,
        "total": 3,
    }
    undone = api.post(undo_url(campaign), {"judgment": judged["id"]}, format="json")
    assert undone.status_code == 200
    body = undone.json()
    assert {key: body[key] for key in judged} == judged, "the judgment as it was recorded"
    assert body["withdrawn_at"] >= judged["created_at"]
    assert not Judgment.objects.exists() and WithdrawnJudgment.objects.get().pk == judged["id"]
    assert api.get(reverse("api-campaign-progress", args=[campaign.pk])).json()["done"] == 0
    assert api.get(next_url(campaign)).json()["id"] == pair["id"]


def test_a_retried_undo_answers_the_same_judgment_and_undoes_nothing_more(api, campaign):
    ids = []
    for _ in range(2):
        ids.append(api.post(judge_url(api.get(next_url(campaign)).json()["id"]), {"choice": "right"}).json()["id"])
    first = api.post(undo_url(campaign), {"judgment": ids[1]}, format="json")
    retry = api.post(undo_url(campaign), {"judgment": ids[1]}, format="json")
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == first.json()
    assert list(Judgment.objects.values_list("pk", flat=True)) == [ids[0]]


def test_undo_names_the_judgment_or_is_refused_with_the_reason(api, campaign, settings):
    missing = api.post(undo_url(campaign), {}, format="json")
    assert missing.status_code == 400
    assert missing.json() == {
        "judgment": ["Name the judgment to undo: its id, as POST /api/comparisons/<id>/judgments/ answered it."]
    }
    ids = [api.post(judge_url(api.get(next_url(campaign)).json()["id"]), {"choice": "tie"}).json()["id"] for _ in "ab"]
    older = api.post(undo_url(campaign), {"judgment": ids[0]}, format="json")
    assert older.status_code == 409
    assert older.json()["detail"] == (
        f"Judgment {ids[0]} is not your latest in campaign 'Helpfulness': only your latest judgment ({ids[1]}) "
        "can be undone; nothing was undone."
    )
    settings.ANNOTATION_UNDO_SECONDS = 0
    late = api.post(undo_url(campaign), {"judgment": ids[1]}, format="json")
    assert late.status_code == 409 and "a judgment can be undone only within 0 seconds" in late.json()["detail"]
    assert Judgment.objects.count() == 2 and not WithdrawnJudgment.objects.exists()


def _jsonl(rows) -> io.BytesIO:
    data = io.BytesIO("\n".join(json.dumps(r) for r in rows).encode())
    data.name = "pairs.jsonl"
    return data


def test_import_is_staff_only(api):
    response = api.post(
        reverse("api-pairs-import"),
        {"file": _jsonl([{"prompt": "q", "response_a": "a", "response_b": "b"}]), "campaign": "X"},
        format="multipart",
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "This is for staff (admins) only. Ask an admin if you need access."
    assert not Campaign.objects.filter(name="X").exists()


def test_staff_import_through_the_api(staff_api):
    rows = [{"prompt": f"q{i}", "response_a": "a", "response_b": "b", "topic": "t"} for i in range(3)]
    response = staff_api.post(
        reverse("api-pairs-import"), {"file": _jsonl(rows), "campaign": "Imported"}, format="multipart"
    )
    assert response.status_code == 201
    assert response.json() | {"campaign_id": 0} == {
        "campaign_id": 0,
        "campaign": "Imported",
        "campaign_created": True,
        "rows": 3,
        "imported": 3,
        "already_present": 0,
    }


def test_staff_import_with_a_bad_row_is_a_400_and_imports_nothing(staff_api):
    rows = [{"prompt": "q", "response_a": "a", "response_b": "b"}, {"prompt": "q2", "response_a": "a"}]
    response = staff_api.post(
        reverse("api-pairs-import"), {"file": _jsonl(rows), "campaign": "Broken"}, format="multipart"
    )
    assert response.status_code == 400
    assert "pairs.jsonl, line 2: field 'response_b' is missing" in response.json()["detail"]
    assert not Campaign.objects.filter(name="Broken").exists()


def test_openapi_schema_is_served(api):
    response = api.get(reverse("api-schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert "/api/campaigns/{id}/next/" in paths
    assert "/api/comparisons/{id}/judgments/" in paths


def test_token_can_be_created_with_drf_create_token(annotator):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("drf_create_token", annotator.username, stdout=out)
    assert Token.objects.get(user=annotator).key in out.getvalue()


def test_staff_can_annotate_any_open_campaign_too(staff_api, campaign):
    assert staff_api.get(next_url(campaign)).status_code == 200


def test_two_annotators_get_different_pairs_when_overlap_is_one(campaign):
    clients = []
    for name in ("x", "y"):
        client = APIClient()
        client.force_authenticate(make_user(name))
        clients.append(client)
    ids = {c.get(next_url(campaign)).json()["id"] for c in clients}
    assert len(ids) == 2


def _table_counts() -> dict[str, int]:
    from annotator.models import Assignment, Comparison, Prompt

    return {
        model.__name__: model.objects.count()
        for model in (Campaign, Prompt, Candidate, Comparison, Judgment, Assignment)
    }


@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_deeply_nested_json_body_is_a_400_saying_so_and_records_nothing(api, campaign, depth):
    pair = api.get(next_url(campaign)).json()
    before = _table_counts()
    body = '{"choice": "left", "rationale": ' + "[" * depth + "]" * depth + "}"
    response = api.post(judge_url(pair["id"]), body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "JSON parse error - the body is nested more than 64 levels deep: flatten it."
    assert _table_counts() == before


def test_a_json_body_over_django_s_upload_limit_is_a_400(api, campaign, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    pair = api.get(next_url(campaign)).json()
    response = api.post(judge_url(pair["id"]), {"choice": "left", "rationale": "x" * 1000}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "The request body is over 1,000 bytes, the most this server takes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    )
    assert not Judgment.objects.exists()


@pytest.mark.parametrize("duration_ms", [10**30, 2**40, 24 * 3600 * 1000 + 1])
def test_a_duration_over_a_day_is_a_400_like_on_the_web_form(api, campaign, duration_ms):
    pair = api.get(next_url(campaign)).json()
    response = api.post(judge_url(pair["id"]), {"choice": "left", "duration_ms": duration_ms}, format="json")
    assert response.status_code == 400
    assert response.json() == {"duration_ms": ["Ensure this value is less than or equal to 86400000."]}
    assert not Judgment.objects.exists()
    response = api.post(judge_url(pair["id"]), {"choice": "left", "duration_ms": 24 * 3600 * 1000}, format="json")
    assert response.status_code == 201 and response.json()["duration_ms"] == 86_400_000


def test_nul_characters_and_lone_surrogates_in_a_rationale_are_a_400(api, campaign):
    pair = api.get(next_url(campaign)).json()
    for rationale, message in [
        ("clear\x00er", "Null characters are not allowed."),
        ("clear\ud800er", "Surrogate characters are not allowed: U+D800."),
    ]:
        body = json.dumps({"choice": "left", "rationale": rationale})
        response = api.post(judge_url(pair["id"]), body, content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {"rationale": [message]}
    assert not Judgment.objects.exists()


def test_an_upload_over_the_limit_is_refused_before_it_is_read(staff_api, settings):
    settings.MAX_UPLOAD_BYTES = 2000
    rows = [{"prompt": f"q{i}", "response_a": "a" * 50, "response_b": "b"} for i in range(40)]
    response = staff_api.post(
        reverse("api-pairs-import"), {"file": _jsonl(rows), "campaign": "Big"}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The upload is ")
    assert response.json()["detail"].endswith(
        " bytes, over the limit of 2,000 bytes (PREFSTUDIO_MAX_UPLOAD_BYTES): split the file."
    )
    assert not Campaign.objects.filter(name="Big").exists()


@pytest.fixture
def token_api(annotator) -> APIClient:
    """A client that signs in with a token, as scripts do: its lookup counts in the queries."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    return client


def test_next_and_submit_run_a_fixed_number_of_queries(token_api, django_assert_num_queries):
    campaign = make_campaign("Counted", pairs=3, overlap=2)
    # The token and its user; the campaign open to the caller; in a transaction (here a savepoint): the caller's
    # current lease, the open pairs, the chosen pair's leases, the new lease; the pair's prompt and responses.
    with django_assert_num_queries(9):
        pair = token_api.get(next_url(campaign)).json()
    with django_assert_num_queries(6):  # asked again: the current lease answers, nothing is written
        assert token_api.get(next_url(campaign)).json()["id"] == pair["id"]
    # The token; the pair open to the caller; in a transaction: the pair's row lock with a judgment already there
    # and the lease (one statement); the judgment (in a savepoint of its own), the vote, the lease removed.
    with django_assert_num_queries(10):
        assert token_api.post(judge_url(pair["id"]), {"choice": "left"}).status_code == 201
    pair = token_api.get(next_url(campaign)).json()
    with django_assert_num_queries(10 + 7):  # the submit, then next's queries after the token and campaign
        body = token_api.post(judge_url(pair["id"]) + "?next=1", {"choice": "tie"}).json()
    assert body["next"]["id"] not in (pair["id"], None)


def test_submit_with_next_answers_the_judgment_and_the_next_pair_held_for_you(token_api, annotator, campaign):
    pair = token_api.get(next_url(campaign)).json()
    response = token_api.post(judge_url(pair["id"]) + "?next=1", {"choice": "left", "duration_ms": 900})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"judgment", "next"}
    judgment = Judgment.objects.get(pk=body["judgment"]["id"])
    assert (judgment.comparison_id, judgment.annotator, judgment.duration_ms) == (pair["id"], annotator, 900)
    assert body["judgment"]["choice"] == "left"
    following = body["next"]
    assert following["id"] != pair["id"]
    assert set(following) == {"id", "prompt", "left", "right", "expires_at", "rank"}
    assert following["rank"] is None, "a pair to judge as a pair"
    assert token_api.get(next_url(campaign)).json() == following, "the next pair is leased to you, same sides"
    repeat = token_api.post(judge_url(pair["id"]) + "?next=1", {"choice": "right"})
    assert repeat.status_code == 200, "a retried submit records nothing more"
    assert repeat.json() == {"judgment": body["judgment"], "next": following}
    assert Judgment.objects.filter(annotator=annotator).count() == 1


def test_submit_with_next_says_done_or_when_to_ask_again_like_next(token_api):
    done = make_campaign("Done", pairs=1)
    pair = token_api.get(next_url(done)).json()
    response = token_api.post(judge_url(pair["id"]) + "?next=1", {"choice": "skip"})
    assert (response.status_code, response.json()["next"]) == (201, None)
    assert "Retry-After" not in response, "nothing can come back: done"

    held = make_campaign("Held by others", pairs=2, overlap=1)
    pair = token_api.get(next_url(held)).json()
    assignment_next(campaign=held, annotator=make_user("holder"))  # holds the other pair
    response = token_api.post(judge_url(pair["id"]) + "?next=1", {"choice": "left"})
    assert (response.status_code, response.json()["next"]) == (201, None)
    assert 0 < int(response["Retry-After"]) <= settings.ANNOTATION_LEASE_SECONDS


def test_submit_with_a_next_flag_it_cannot_read_is_a_400_that_records_nothing(token_api, campaign):
    pair = token_api.get(next_url(campaign)).json()
    response = token_api.post(judge_url(pair["id"]) + "?next=yes-please", {"choice": "left"})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "next is 'yes-please': use next=1 for the judgment and your next pair, or leave it out."
    )
    assert not Judgment.objects.exists()
    plain = token_api.post(judge_url(pair["id"]) + "?next=0", {"choice": "left"})
    assert plain.status_code == 201 and "next" not in plain.json()


def test_submit_with_next_refusals_are_answered_as_without_it(token_api, other_annotator, campaign):
    not_handed = campaign.prompts.first().comparisons.first()
    response = token_api.post(judge_url(not_handed.pk) + "?next=1", {"choice": "left"})
    assert response.status_code == 409 and "ask for the next pair first" in response.json()["detail"]
    private = make_campaign("Private", pairs=1)
    private.annotators.add(other_annotator)
    hidden = private.prompts.first().comparisons.first()
    response = token_api.post(judge_url(hidden.pk) + "?next=1", {"choice": "left"})
    assert response.status_code == 404
    assert response.json() == {"detail": "No pair with this id is open to you."}
    missing = token_api.post(judge_url(hidden.pk + 1000) + "?next=1", {"choice": "left"})
    assert (missing.status_code, missing.json()) == (404, response.json()), "the same 404 as for a missing pair"


def test_the_hot_path_answers_are_what_their_serializers_give(api, campaign):
    from annotator.selectors import comparison_as_shown
    from annotator.serializers import (
        JudgmentSerializer,
        NextComparisonSerializer,
        judgment_data,
        next_comparison_data,
    )
    from core.conversations import conversation_with_system

    pair = api.get(next_url(campaign)).json()
    assignment = Assignment.objects.get(comparison_id=pair["id"])
    shown = comparison_as_shown(assignment=assignment)
    prompt = shown.comparison.prompt
    payload = {
        "id": shown.comparison.pk,
        "prompt": conversation_with_system(prompt.messages, prompt.system),
        "left": {"id": shown.left.pk, "text": shown.left.text, "truncated": shown.left.is_truncated},
        "right": {"id": shown.right.pk, "text": shown.right.text, "truncated": shown.right.is_truncated},
        "expires_at": assignment.expires_at,
    }
    assert next_comparison_data(shown=shown, expires_at=assignment.expires_at) == NextComparisonSerializer(payload).data
    body = api.post(judge_url(pair["id"]), {"choice": "right", "rationale": "why", "duration_ms": 5}).json()
    judgment = Judgment.objects.get(pk=body["id"])
    assert judgment_data(judgment) == JudgmentSerializer(judgment).data == body


def test_a_bad_revoked_or_inactive_token_is_a_401_saying_which(annotator, campaign):
    token = Token.objects.create(user=annotator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get(next_url(campaign)).status_code == 200
    annotator.is_active = False
    annotator.save()
    response = client.get(next_url(campaign))
    assert (response.status_code, response.json()) == (401, {"detail": "User inactive or deleted."})
    token.delete()
    response = client.get(next_url(campaign))
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})
    client.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    assert client.get(next_url(campaign)).json() == {"detail": "Invalid token."}


def test_the_schema_documents_submit_with_next(api):
    schema = api.get(reverse("api-schema"), HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/comparisons/{id}/judgments/"]["post"]
    assert "next" in [parameter["name"] for parameter in operation["parameters"]]
    answer = operation["responses"]["201"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/JudgmentAnswer"}
    variants = schema["components"]["schemas"]["JudgmentAnswer"]["oneOf"]
    assert {"$ref": "#/components/schemas/JudgmentWithNext"} in variants
    with_next = schema["components"]["schemas"]["JudgmentWithNext"]["properties"]
    assert set(with_next) == {"judgment", "next"}
