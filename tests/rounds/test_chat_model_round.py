"""The proof: one round on a real chat model makes it better in a blind comparison the product itself measures.

SmolLM2-135M-Instruct samples four answers per prompt through its chat template (vLLM); an annotator labels the
pairs through the API by one visible rule (tests/rounds/chat_round.py: one paragraph beats several lines); the
round exports them (conversational rows, cut-off answers left out), trains with DPO, samples the tuned model
and its policy blind on held-out prompts, and the same annotator labels those. The round's own win rate of
the tuned model, read from the API, must be above 0.6 with the lower end of its 95% interval above 0.5.
"""

import pytest
from django.db import connection
from django.test import Client

from annotator.models import Candidate
from rounds.models import Round, Step
from tests.factories import make_user
from tests.rounds import chat_round


def round_(seconds: float) -> float:
    return round(seconds, 1)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_one_round_on_a_chat_model_wins_the_blind_comparison_against_its_policy(smollm2_model, engine_env, tmp_path):
    train, held_out = chat_round.prompts_write(tmp_path, train=chat_round.TRAIN_PROMPTS, held_out=chat_round.HELD_OUT)
    manage = chat_round.Manage(
        env=chat_round.subprocess_env(
            database_url=f"sqlite:///{connection.settings_dict['NAME']}", data_dir=tmp_path / "data", base=engine_env
        )
    )
    settings = chat_round.series_settings(model=smollm2_model, train=train, held_out=held_out)
    manage("round", "start", "--series", "Chat", *settings, label="start")
    manage("round", "advance", "--series", "Chat", "--all", label="generate")
    round = Round.objects.get()
    assert round.step == Step.LABEL
    candidates = Candidate.objects.filter(prompt__campaign=round.campaign)
    assert candidates.exists() and set(candidates.values_list("prompt_format", flat=True)) == {"chat"}

    client = Client()
    client.force_login(make_user("ann"))
    labelled = chat_round.label_all(client, round.campaign_id)
    assert labelled["left"] + labelled["right"] >= 30, labelled  # decisive pairs to learn from

    manage("round", "advance", "--series", "Chat", "--all", label="export, train, evaluate")
    round.refresh_from_db()
    assert round.step == Step.EVAL_LABEL and round.export.stats["format"] == "conversational"
    chat_round.label_all(client, round.eval_campaign_id)
    manage("round", "advance", "--series", "Chat", label="win rate")

    staff = Client()
    staff.force_login(make_user("boss", staff=True))
    shown = staff.get(f"/api/rounds/{round.pk}/").json()
    print("round:", {k: shown[k] for k in ("step", "eval_pairs", "win_rate", "win_rate_low", "win_rate_high")})
    print("seconds:", {k: round_(v) for k, v in manage.timings.items()}, "labelled:", labelled)
    assert shown["step"] == Step.DONE
    assert shown["eval_pairs"] >= chat_round.HELD_OUT - 4  # a prompt whose two answers are the same makes no pair
    assert shown["win_rate"] > 0.6 and shown["win_rate_low"] > 0.5, shown
