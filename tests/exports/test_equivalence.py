"""The batch export (votes counted in the database, rows shaped in Arrow) writes exactly what the row-by-row
export it replaced wrote (`reference_export.py`): the same rows, chosen sides, splits, columns and counts, on
fixtures built for the edge cases and on the shared real human preferences, for every judges setting, filter
and format."""

import json
import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import AbstractBaseUser

from annotator.importing import pairs_import, pairs_read
from annotator.models import Campaign, Candidate, Comparison, JudgeSource, Judgment, Side
from annotator.services import campaign_create, candidate_create, prompt_get_or_create
from core.errors import InputError
from exports.aggregation import Drop
from exports.formats import OPENAI, STRING, TRAIN, VALIDATION
from exports.options import ExportOptions
from exports.pipeline import campaign_export, output_kind
from exports.selectors import campaign_shape
from exports.writers import parquet_schema
from tests.exports.reference_export import reference_export
from tests.factories import HUMAN_PREFERENCES, TINY_MODEL, add_pair, make_user

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def vote(comparison: Comparison, judge: AbstractBaseUser, verdict: str, source: str = JudgeSource.HUMAN) -> Judgment:
    return Judgment(
        comparison=comparison, annotator=judge, verdict=verdict, shown_left=random.choice(Side.values), source=source
    )


def judged_at_whole_seconds_and_out_of_order(campaign: Campaign) -> None:
    """Some votes cast on a whole second (stored without a fraction) and earlier than votes recorded before them:
    the votes of a pair are listed in the order they were recorded (judgment id), not by time."""
    for index, judgment in enumerate(Judgment.objects.filter(comparison__prompt__campaign=campaign).order_by("id")):
        if index % 3 == 1:
            Judgment.objects.filter(pk=judgment.pk).update(created_at=AT - timedelta(days=index))


def edges_campaign() -> Campaign:
    """Imported pairs, one per rule of the aggregation and the checks, with prompts and texts that test the
    decoding: unicode, escapes, system messages, several turns, odd whitespace, unsorted sampling parameters."""
    campaign = campaign_create(name="Edges")
    people = [make_user(f"person{i}") for i in range(5)]
    robots = [make_user(f"robot{i}") for i in range(2)]
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! \u2014 how can I help?"},
        {"role": "user", "content": 'Say "yes"\\no\n\tplease'},
    ]
    plan = [
        # prompt, system, text a, text b, human votes, AI votes
        ("Which is better?", "", "Answer A", "Answer B", "aab", ""),
        (turns, "Be brief.", "Sure", "Yes", "b", "b"),
        ("Ünïcödé 🙂 ✓ \u0007 ctl", "", "Réponse 🙂", "Antwort \U0001f680", "tta", ""),
        ("Both bad?", "", "x", "y", "B", ""),
        ("Split?", 'You are "careful".', "left", "right", "ab", "a"),
        ("Skipped by people", "", "one", "two", "s", "a"),
        ("Only the robots", "", "three", "four", "", "bb"),
        ("Nobody", "", "five", "six", "", ""),
        ("Blank a", "", "\u3000\n ", "fine", "a", ""),
        ("Blank b", "", "fine", "\x1c\x1d", "a", ""),
        ("Same texts", "", "same", "same", "b", ""),
        ("Cut off", "", "A long answer that", "Short.", "a", "b"),
        ("Plurality", "", "p", "q", "aatB", "ab"),
        ("Five votes", "", "r", "s", "ababa", "t"),
        ("Robots disagree", "", "u", "v", "", "ab"),
        (turns[:1], "System only", "w", "z", "bbb", ""),
    ]
    verdict_of = {"a": "a", "b": "b", "t": "tie", "B": "both_bad", "s": "skip"}
    judgments = []
    for prompt, system, text_a, text_b, human, ai in plan:
        comparison = add_pair(campaign, prompt, text_a, text_b, system=system)
        judgments += [vote(comparison, people[i], verdict_of[v]) for i, v in enumerate(human)]
        judgments += [vote(comparison, robots[i], verdict_of[v], JudgeSource.AI) for i, v in enumerate(ai)]
    Judgment.objects.bulk_create(judgments)
    comparisons = list(Comparison.objects.filter(prompt__campaign=campaign).order_by("id"))
    Candidate.objects.filter(pk=comparisons[11].candidate_a_id).update(finish_reason="length")
    Candidate.objects.filter(pk=comparisons[0].candidate_a_id).update(
        sampling_params={"top_p": 0.9, "temperature": 0.7, "nested": {"b": [1, 2.5], "a": None}}, seed=2**62
    )
    Candidate.objects.filter(pk=comparisons[0].candidate_b_id).update(sampling_params={"z": "é", "a": 1}, seed=0)
    # A pair whose candidate b answers another prompt (the services refuse to make one; old data may hold it).
    elsewhere = comparisons[2].candidate_b
    mismatched = comparisons[4]
    Comparison.objects.filter(pk=mismatched.pk).update(candidate_b=elsewhere)
    judged_at_whole_seconds_and_out_of_order(campaign)
    return campaign


def sampled_campaign(name: str, sampled: str) -> Campaign:
    """Pairs sampled one way (chat template, raw text, or imported single-turn prompts), plus, for raw text, a pair
    whose two responses were sampled from different texts and one sampled through a chat template."""
    campaign = campaign_create(name=name)
    judges = [make_user(f"{name}-{i}") for i in range(3)]
    prompts = ["Once upon a time", "The capital of France is", "def add(a, b):"]
    if sampled == "chat":
        prompts.append([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"},
                        {"role": "user", "content": "Tell me more"}])  # fmt: skip
    judgments = []
    for i, prompt in enumerate(prompts):
        for j in range(3):
            comparison = add_pair(campaign, prompt, f" a{i}.{j} ", f" b{i}.{j}", sampled=sampled,
                                  **({"system": "Be nice."} if sampled == "chat" and j == 1 else {}))  # fmt: skip
            judgments += [vote(comparison, judge, "ab"[(i + j + k) % 2 if k else j % 2]) for k, judge in
                          enumerate(judges)]  # fmt: skip
    if sampled == "text":
        prompt, _ = prompt_get_or_create(campaign=campaign, prompt="Two texts")
        a = candidate_create(prompt=prompt, text="x", prompt_format="text", prompt_text="Two texts")
        b = candidate_create(prompt=prompt, text="y", prompt_format="text", prompt_text="Two texts\n\n")
        comparison = Comparison.objects.create(prompt=prompt, candidate_a=a, candidate_b=b)
        judgments.append(vote(comparison, judges[0], "a"))
        judgments.append(vote(add_pair(campaign, "Chat", "c", "d", sampled="chat"), judges[0], "b"))
    Judgment.objects.bulk_create(judgments)
    judged_at_whole_seconds_and_out_of_order(campaign)
    return campaign


def real_campaign() -> Campaign:
    """The shared human preferences, each judged by three people (the label most of the time, sometimes the other
    side, a tie, both bad or a skip) and every third by an AI judge."""
    campaign = campaign_create(name="Human preferences")
    with HUMAN_PREFERENCES.open("rb") as handle:
        pairs_import(rows=pairs_read(handle, name=HUMAN_PREFERENCES.name), campaign_name=campaign.name)
    people = [make_user(f"annotator{i}") for i in range(3)]
    robot = make_user("judge-model")
    rng = random.Random(12)
    judgments = []
    for index, comparison in enumerate(Comparison.objects.filter(prompt__campaign=campaign).order_by("id")):
        label = comparison.metadata.get("label", "a")
        other = {"a": "b", "b": "a"}.get(label, "a")
        for person in people:
            verdict = rng.choices([label, other, "tie", "both_bad", "skip"], weights=[70, 15, 7, 3, 5])[0]
            judgments.append(vote(comparison, person, verdict))
        if index % 3 == 0:
            judgments.append(vote(comparison, robot, label if index % 2 else other, JudgeSource.AI))
    Judgment.objects.bulk_create(judgments)
    judged_at_whole_seconds_and_out_of_order(campaign)
    return campaign


def assert_same_export(campaign: Campaign, out_dir, chunk_size: int = 4096, **given) -> dict:
    """Export with the product and with the reference; the same files (or the same refusal) and the same counts."""
    options = ExportOptions.from_mapping(given)
    kind = output_kind(options.format, campaign_shape(campaign=campaign), campaign)
    expected, stats = reference_export(campaign=campaign, options=options, kind=kind, chunk_size=chunk_size)
    shape = campaign_shape(campaign=campaign)
    stats.pairs = shape.pairs
    stats.dropped[Drop.NO_VOTES] += max(0, shape.pairs - stats.judged)
    try:
        result = campaign_export(campaign=campaign, options=options, out_dir=out_dir, chunk_size=chunk_size)
    except InputError as error:
        if not stats.exported:
            assert error.message == stats.why_empty(campaign=campaign, options=options)
        else:
            assert not stats.rows[TRAIN] and error.message.startswith(f"All {stats.exported} exported row(s)")
        return stats.as_dict()
    assert stats.exported, "the reference writes nothing here"
    assert json.dumps(result.stats) == json.dumps(stats.as_dict())  # the same counts, listed in the same order
    for split in (TRAIN, VALIDATION):
        if kind == OPENAI:
            path = out_dir / f"{split}.jsonl"
            written = path.read_text(encoding="utf-8") if path.exists() else ""
            assert written == "".join(json_line(row) for row in expected[split])
        else:
            path = out_dir / f"{split}.parquet"
            written = pq.read_table(path).to_pylist() if path.exists() else []
            schema = parquet_schema(conversational=kind != STRING)
            assert written == pa.Table.from_pylist(expected[split], schema=schema).to_pylist()
    return result.stats


def json_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


EDGE_OPTIONS = [
    {},
    {"judges": "ai"},
    {"judges": "both"},
    {"judges": "both", "min_votes": 2},
    {"min_agreement": 0.6},
    {"min_agreement": 0.5, "min_votes": 3},
    {"keep_truncated": True, "judges": "both"},
    {"val_fraction": 0.5, "seed": 3},
    {"val_fraction": 0.99},
    {"format": "openai", "judges": "both"},
    {"format": "openai", "keep_truncated": True},
]


@pytest.mark.parametrize("options", EDGE_OPTIONS, ids=lambda options: str(options) or "defaults")
@pytest.mark.parametrize("chunk_size", [3, 4096])
def test_the_edge_cases_export_as_they_did_row_by_row(tmp_path, options, chunk_size):
    stats = assert_same_export(edges_campaign(), tmp_path, chunk_size=chunk_size, **options)
    assert stats["pairs"] == 16


@pytest.mark.parametrize(
    ("sampled", "options"),
    [
        ("text", {"format": "string"}),
        ("text", {"format": "conversational"}),
        ("text", {"format": "string", "judges": "both", "min_agreement": 0.6}),
        ("chat", {}),
        ("chat", {"format": "openai"}),
        ("chat", {"format": "conversational", "val_fraction": 0.5}),
        ("", {"format": "string", "val_fraction": 0.4}),
        ("", {"format": "string", "tokenizer": str(TINY_MODEL), "max_length": 9, "drop_overlong": True}),
        ("", {"format": "string", "tokenizer": str(TINY_MODEL), "max_length": 9}),
    ],
)
def test_each_way_of_sampling_exports_as_it_did_row_by_row(tmp_path, sampled, options):
    assert_same_export(sampled_campaign(f"Sampled {sampled or 'imported'}", sampled), tmp_path, chunk_size=4, **options)


REAL_OPTIONS = [
    {},
    {"judges": "both"},
    {"judges": "ai", "val_fraction": 0.3, "seed": 7},
    {"min_votes": 2, "min_agreement": 0.66},
    {"min_votes": 3, "judges": "both", "keep_truncated": True},
    {"format": "openai", "judges": "both"},
]


@pytest.mark.parametrize("options", REAL_OPTIONS, ids=lambda options: str(options) or "defaults")
def test_the_real_human_preferences_export_as_they_did_row_by_row(tmp_path, options):
    stats = assert_same_export(real_campaign(), tmp_path, chunk_size=100, **options)
    assert stats["exported"] > 200  # a third of the pairs have an AI vote
