import json
import os

import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator.models import Campaign, Candidate, Comparison, Judgment
from core.checksums import file_sha256
from core.errors import ConflictError, InputError
from core.models import JobStatus
from exports.models import DatasetExport
from exports.services import dataset_export_create, dataset_export_run
from tests.exports.helpers import ai_judge, judge_all, read_rows
from tests.factories import add_pair, make_campaign, make_user

pytestmark = pytest.mark.django_db


def run_export(campaign, out_dir, **options) -> DatasetExport:
    export = dataset_export_create(campaign=campaign, options=options, out_dir=out_dir)
    return dataset_export_run(export=export)


def by_comparison(rows: list[dict]) -> dict[int, dict]:
    return {row["comparison_id"]: row for row in rows}


def test_chosen_is_the_text_annotators_preferred_whatever_side_they_saw(tmp_path):
    campaign = make_campaign("Sides", pairs=12, overlap=3, sampled="text")
    # Pairs with an even id prefer B, odd ones A; three annotators, each with their own random sides.
    wanted = {c.pk: ("b" if c.pk % 2 == 0 else "a") for c in Comparison.objects.filter(prompt__campaign=campaign)}
    for name in ("ann1", "ann2", "ann3"):
        judge_all(campaign, make_user(name), lambda comparison: wanted[comparison.pk])
    assert set(Judgment.objects.values_list("shown_left", flat=True)) == {"a", "b"}
    export = run_export(campaign, tmp_path, val_fraction=0.0)
    rows = by_comparison(read_rows(tmp_path))
    assert len(rows) == 12
    for comparison in Comparison.objects.filter(prompt__campaign=campaign).select_related("candidate_a", "candidate_b"):
        row = rows[comparison.pk]
        winner, loser = (
            (comparison.candidate_a, comparison.candidate_b)
            if wanted[comparison.pk] == "a"
            else (comparison.candidate_b, comparison.candidate_a)
        )
        assert (row["chosen"], row["rejected"]) == (winner.text, loser.text)
        assert (row["chosen_candidate_id"], row["chosen_side"]) == (winner.pk, wanted[comparison.pk])
        assert (row["votes"], row["agreement"], row["annotator_votes"]) == (3, 1.0, ["chosen"] * 3)
    assert export.status == JobStatus.SUCCEEDED
    assert export.stats["exported"] == 12
    assert sorted(os.listdir(tmp_path)) == [".preference-studio-export", "README.md", "train.parquet"]


def test_the_export_is_recorded_with_options_counts_paths_and_checksums(tmp_path):
    campaign = make_campaign("Record", pairs=30)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = run_export(campaign, tmp_path, val_fraction=0.3, seed=3)
    export.refresh_from_db()
    assert export.options["val_fraction"] == 0.3
    assert export.options["seed"] == 3
    assert export.started_at <= export.finished_at
    assert set(export.files) == {"train", "validation", "card"}
    for name in ("train", "validation"):
        entry = export.files[name]
        assert entry["sha256"] == file_sha256(tmp_path / f"{name}.parquet")
        assert entry["rows"] == pq.ParquetFile(tmp_path / f"{name}.parquet").metadata.num_rows
        assert entry["rows"] == export.stats["rows"][name]
    card = (tmp_path / "README.md").read_text()
    assert export.files["train"]["sha256"] in card
    assert export.files["validation"]["sha256"] in card
    assert export.files["card"]["sha256"] == file_sha256(tmp_path / "README.md")


def test_split_is_by_prompt_so_no_prompt_is_in_both_splits(tmp_path):
    campaign = make_campaign("Split", pairs=0)
    for i in range(40):
        for j in range(3):  # three pairs per prompt: the same prompt text makes one prompt hash
            add_pair(campaign, f"Prompt {i}", f"A{i}.{j}", f"B{i}.{j}", sampled="text")
    judge_all(campaign, make_user("ann"), lambda c: "b")
    run_export(campaign, tmp_path, val_fraction=0.3, seed=11)
    train = pq.read_table(tmp_path / "train.parquet").to_pylist()
    validation = pq.read_table(tmp_path / "validation.parquet").to_pylist()
    assert len(train) + len(validation) == 120
    assert validation, "with 40 prompts and val_fraction 0.3, some prompts go to validation"
    assert not {r["prompt_hash"] for r in train} & {r["prompt_hash"] for r in validation}
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in validation}


def test_the_same_seed_gives_the_same_split_and_another_seed_another(tmp_path):
    campaign = make_campaign("Seeds", pairs=40)
    judge_all(campaign, make_user("ann"), lambda c: "a")

    def validation_ids(seed: int, out: str) -> set[int]:
        run_export(campaign, tmp_path / out, val_fraction=0.5, seed=seed)
        return {row["comparison_id"] for row in pq.read_table(tmp_path / out / "validation.parquet").to_pylist()}

    assert validation_ids(1, "one") == validation_ids(1, "again")
    assert validation_ids(1, "one") != validation_ids(2, "two")


def test_ties_and_both_bad_are_dropped_and_counted_skips_ignored(tmp_path):
    campaign = make_campaign("Ties", pairs=5)
    ids = list(Comparison.objects.filter(prompt__campaign=campaign).values_list("pk", flat=True))
    verdicts = dict(zip(ids, ["a", "tie", "both_bad", None, "b"], strict=True))
    judge_all(campaign, make_user("ann"), lambda c: verdicts[c.pk])
    export = run_export(campaign, tmp_path, val_fraction=0.0)
    assert set(by_comparison(read_rows(tmp_path))) == {ids[0], ids[4]}
    dropped = export.stats["dropped"]
    assert (dropped["tie"], dropped["both_bad"], dropped["no_votes"]) == (1, 1, 1)
    card = (tmp_path / "README.md").read_text()
    assert "| dropped: were judged a tie | 1 |" in card
    assert "| dropped: were judged both bad | 1 |" in card


def test_min_votes_and_min_agreement_filter_pairs(tmp_path):
    campaign = make_campaign("Filters", pairs=3, overlap=3)
    first, second, third = Comparison.objects.filter(prompt__campaign=campaign).order_by("pk")
    plan = {first.pk: ["a", "a", "a"], second.pk: ["a", "a", "b"], third.pk: ["b", None, None]}
    for index, name in enumerate(("u1", "u2", "u3")):
        judge_all(campaign, make_user(name), lambda c, index=index: plan[c.pk][index])
    export = run_export(campaign, tmp_path / "strict", min_votes=2, min_agreement=0.75, val_fraction=0.0)
    assert set(by_comparison(read_rows(tmp_path / "strict"))) == {first.pk}
    assert export.stats["dropped"]["too_few_votes"] == 1
    assert export.stats["dropped"]["low_agreement"] == 1
    run_export(campaign, tmp_path / "loose", val_fraction=0.0)
    loose = by_comparison(read_rows(tmp_path / "loose"))
    assert set(loose) == {first.pk, second.pk, third.pk}
    assert loose[second.pk]["agreement"] == pytest.approx(2 / 3)
    assert loose[third.pk]["votes"] == 1


def test_judges_option_picks_human_ai_or_ai_where_humans_are_absent(tmp_path):
    campaign = make_campaign("Judges", pairs=3)
    human_judged, ai_disagrees, ai_only = Comparison.objects.filter(prompt__campaign=campaign).order_by("pk")
    robot = make_user("ai-judge")
    # the human judges the first two pairs only (skips the third)
    judge_all(campaign, make_user("ann"), lambda c: "a" if c.pk != ai_only.pk else None)
    ai_judge(ai_disagrees, robot, "b")
    ai_judge(ai_only, robot, "b")

    def exported(judges: str) -> dict[int, dict]:
        run_export(campaign, tmp_path / judges, judges=judges, val_fraction=0.0)
        return by_comparison(read_rows(tmp_path / judges))

    humans, ai, both = exported("humans"), exported("ai"), exported("both")
    assert set(humans) == {human_judged.pk, ai_disagrees.pk}
    assert {row["judge_source"] for row in humans.values()} == {"human"}
    assert set(ai) == {ai_disagrees.pk, ai_only.pk}
    assert ai[ai_disagrees.pk]["chosen_side"] == "b"
    assert set(both) == {human_judged.pk, ai_disagrees.pk, ai_only.pk}
    assert both[ai_disagrees.pk]["chosen_side"] == "a"  # the human's verdict, not the AI's
    assert both[ai_disagrees.pk]["judge_source"] == "human"
    assert both[ai_only.pk]["judge_source"] == "ai"


TURNS = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hey"},
    {"role": "user", "content": "?"},
]


def test_auto_exports_raw_text_completions_as_strings_whose_prompt_is_exactly_the_text_the_model_continued(tmp_path):
    campaign = make_campaign("Raw", pairs=1, sampled="text")
    add_pair(campaign, TURNS, "One", "Two", system="Be brief.", sampled="text")
    judge_all(campaign, make_user("ann"), lambda c: "b")
    export = run_export(campaign, tmp_path, val_fraction=0.0)
    assert export.stats["format"] == "string"
    rows = sorted(read_rows(tmp_path), key=lambda row: row["comparison_id"])
    # Nothing added: no separator after a single turn, and a conversation as the plain text it was sent as.
    assert [row["prompt"] for row in rows] == ["Question 0?", "Be brief.\n\nHi\n\nHey\n\n?"]
    assert (rows[1]["chosen"], rows[1]["rejected"]) == ("Two", "One")
    assert export.stats["format_reason"] == (
        "Format string, chosen by auto from how the responses were sampled. 2 pair(s) were sampled as raw text "
        "completions (the model has no chat template): each prompt is exactly the text the model continued, "
        "nothing added, so prompt + response + EOS is what it produced."
    )
    assert export.stats["format_reason"] in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize("sampled", ["chat", ""], ids=["chat-template", "imported"])
def test_auto_exports_chat_templated_and_imported_pairs_as_conversations_whatever_the_number_of_turns(
    tmp_path, sampled
):
    campaign = make_campaign("Chat", pairs=1, sampled=sampled)
    add_pair(campaign, TURNS, "One", "Two", sampled=sampled)
    judge_all(campaign, make_user("ann"), lambda c: "b")
    export = run_export(campaign, tmp_path, val_fraction=0.0)
    assert export.stats["format"] == "conversational"
    rows = sorted(read_rows(tmp_path), key=lambda row: row["comparison_id"])
    assert rows[0]["prompt"] == [{"role": "user", "content": "Question 0?"}]  # one turn: still a conversation
    assert rows[1]["prompt"] == TURNS
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "Two"}]
    card = (tmp_path / "README.md").read_text()
    if sampled == "chat":
        assert (
            "2 pair(s) were sampled through the model's chat template: TRL renders each row with the model's "
            "template, as when the responses were written." in card
        )
    else:
        assert (
            "2 imported pair(s) have no record of how their responses were produced: they are exported as the "
            "conversations they are." in card
        )


def mixed_campaign() -> Campaign:
    campaign = make_campaign("Mixed", pairs=3, sampled="chat")
    add_pair(campaign, "Once upon a time", " there was a cat.", " there was a dog.", sampled="text")
    judge_all(campaign, make_user("ann"), lambda c: "a")
    return campaign


def test_auto_refuses_a_campaign_that_mixes_formats_naming_the_counts_and_the_fix(tmp_path):
    export = dataset_export_create(campaign=mixed_campaign(), options={}, out_dir=tmp_path)
    with pytest.raises(InputError) as caught:
        dataset_export_run(export=export)
    assert caught.value.message == (
        "Campaign 'Mixed' mixes how its responses were sampled: 3 pair(s) through the model's chat template, "
        "1 pair(s) as raw text completions (no chat template). One file holds one format, so auto cannot pick one "
        "that reproduces them all. Export each part into its own directory: format conversational for the "
        "chat-templated and imported pairs, format string for the raw-text ones (each export leaves the other "
        "part out and counts it). Next time, keep each model's generations in a campaign of its own."
    )
    assert os.listdir(tmp_path) == []


def test_a_format_asked_for_exports_the_pairs_it_reproduces_and_counts_the_others(tmp_path):
    campaign = mixed_campaign()
    conversational = run_export(campaign, tmp_path / "chat", format="conversational", val_fraction=0.0)
    assert conversational.stats["exported"] == 3
    assert conversational.stats["refused"] == {"sampled_as_text": 1}
    card = (tmp_path / "chat" / "README.md").read_text()
    assert "Format conversational, as asked." in card
    assert "1 pair(s) sampled as raw text completions are left out (refused)." in card
    assert (
        "| refused: the responses were sampled as raw text completions (no chat template): a conversation would "
        "train them in a context the model never saw (export them in the string format) | 1 |" in card
    )
    string = run_export(campaign, tmp_path / "text", format="string", val_fraction=0.0)
    assert string.stats["refused"] == {"sampled_with_chat_template": 3}
    assert [row["prompt"] for row in read_rows(tmp_path / "text")] == ["Once upon a time"]


@pytest.mark.parametrize(
    ("sampled", "requested", "message"),
    [
        (
            "chat",
            "string",
            "The string format cannot reproduce how the responses of campaign 'Only' were sampled (2 pair(s) through "
            "the model's chat template): a string row trains on prompt + response without the chat template, text "
            "it never produced. Use format conversational (or auto).",
        ),
        (
            "text",
            "conversational",
            "The conversational format cannot reproduce how the responses of campaign 'Only' were sampled (2 pair(s) "
            "as raw text completions (no chat template)): a conversational row is rendered through a chat template "
            "the model never saw. Use format string (or auto).",
        ),
        (
            "text",
            "openai",
            "The openai format cannot reproduce how the responses of campaign 'Only' were sampled (2 pair(s) as raw "
            "text completions (no chat template)): OpenAI trains on conversations rendered in its own chat format. "
            "Use format string (or auto).",
        ),
    ],
)
def test_a_format_that_reproduces_none_of_the_pairs_is_refused_before_writing(tmp_path, sampled, requested, message):
    campaign = make_campaign("Only", pairs=2, sampled=sampled)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = dataset_export_create(campaign=campaign, options={"format": requested}, out_dir=tmp_path)
    with pytest.raises(InputError) as caught:
        dataset_export_run(export=export)
    assert caught.value.message == message
    assert os.listdir(tmp_path) == []


def test_the_string_format_of_imported_prompts_ends_them_with_a_blank_line(tmp_path):
    campaign = make_campaign("Imported", pairs=2)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = run_export(campaign, tmp_path, format="string", val_fraction=0.0)
    assert sorted(row["prompt"] for row in read_rows(tmp_path)) == ["Question 0?\n\n", "Question 1?\n\n"]
    assert (
        "2 imported pair(s) have no recorded prompt text: their prompt is the user message followed by "
        in (export.stats["format_reason"])
    )


def cut_off(comparison: Comparison, side: str) -> None:
    Candidate.objects.filter(pk=getattr(comparison, f"candidate_{side}_id")).update(finish_reason="length")


def test_pairs_with_a_response_cut_off_at_its_token_limit_are_left_out_and_counted_unless_kept(tmp_path):
    campaign = make_campaign("Cut", pairs=4, sampled="text")
    first, second, *_ = Comparison.objects.filter(prompt__campaign=campaign).order_by("pk")
    cut_off(first, "a")  # the chosen one
    cut_off(second, "b")  # the rejected one
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = run_export(campaign, tmp_path / "default", val_fraction=0.0)
    assert set(by_comparison(read_rows(tmp_path / "default"))).isdisjoint({first.pk, second.pk})
    assert (export.stats["exported"], export.stats["truncated"]) == (2, 2)
    assert export.stats["refused"] == {"truncated": 2}
    card = (tmp_path / "default" / "README.md").read_text()
    assert (
        "| refused: a response was cut off at its token limit (finish_reason length): it never ended, and training "
        "would append an end of turn the model never wrote (keep them with keep_truncated) | 2 |" in card
    )
    assert "| pairs with a response cut off at its token limit (finish_reason length), left out | 2 |" in (card)
    kept = run_export(campaign, tmp_path / "kept", val_fraction=0.0, keep_truncated=True)
    assert (kept.stats["exported"], kept.stats["truncated"], kept.stats["refused"]) == (4, 2, {})
    assert "| pairs with a response cut off at its token limit (finish_reason length), kept (keep_truncated) | 2 |" in (
        (tmp_path / "kept" / "README.md").read_text()
    )


def test_nothing_left_but_cut_off_pairs_says_so_and_how_to_keep_them(tmp_path):
    campaign = make_campaign("AllCut", pairs=2, sampled="text")
    for comparison in Comparison.objects.filter(prompt__campaign=campaign):
        cut_off(comparison, "b")
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = dataset_export_create(campaign=campaign, options={}, out_dir=tmp_path)
    with pytest.raises(InputError) as caught:
        dataset_export_run(export=export)
    assert (
        "of its 2 pair(s), 2 refused because a response was cut off at its token limit (finish_reason length): it "
        "never ended, and training would append an end of turn the model never wrote (keep them with "
        "keep_truncated). No file was written" in caught.value.message
    )


def test_string_format_refuses_a_campaign_with_conversations_before_writing(tmp_path):
    campaign = make_campaign("Sys", pairs=1)
    add_pair(campaign, "Hello", "x", "y", system="Be terse.")
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = dataset_export_create(campaign=campaign, options={"format": "string"}, out_dir=tmp_path)
    with pytest.raises(InputError) as caught:
        dataset_export_run(export=export)
    assert caught.value.message == (
        "The string format cannot hold the 1 prompt(s) of campaign 'Sys' that are conversations "
        "(earlier turns or a system message): use format conversational (or auto)."
    )
    export.refresh_from_db()
    assert (export.status, export.error) == (JobStatus.FAILED, caught.value.message)
    assert os.listdir(tmp_path) == []


def test_openai_format_writes_jsonl_and_refuses_multi_turn_rows_with_a_count(tmp_path):
    campaign = make_campaign("OpenAI", pairs=2)
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey"},
        {"role": "user", "content": "?"},
    ]
    add_pair(campaign, turns, "One", "Two")
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = run_export(campaign, tmp_path, format="openai", val_fraction=0.0)
    lines = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0] == {
        "input": {"messages": [{"role": "user", "content": "Question 0?"}]},
        "preferred_output": [{"role": "assistant", "content": "Answer A0"}],
        "non_preferred_output": [{"role": "assistant", "content": "Answer B0"}],
    }
    assert export.stats["refused"] == {"openai_multi_turn": 1}
    assert "OpenAI preference fine-tuning takes one-turn conversations only" in (tmp_path / "README.md").read_text()


def test_a_pair_with_identical_texts_is_refused_and_counted(tmp_path):
    campaign = make_campaign("Same", pairs=1)
    broken = add_pair(campaign, "Q", "same", "different")
    broken.candidate_b.text = "same"
    broken.candidate_b.save()
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = run_export(campaign, tmp_path, val_fraction=0.0)
    assert export.stats["refused"] == {"same_text": 1}
    assert broken.pk not in by_comparison(read_rows(tmp_path))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("nothing judged", "of its 2 pair(s), 2 have no vote from the selected judges"),
        ("all ties", "of its 2 pair(s), 2 were judged a tie. No file was written"),
        ("only ai", "with judges=humans: of its 2 pair(s), 2 have no vote from the selected judges"),
    ],
)
def test_an_export_with_zero_rows_is_an_error_that_says_why(tmp_path, setup, message):
    campaign = make_campaign("Empty", pairs=2)
    if setup == "all ties":
        judge_all(campaign, make_user("ann"), lambda c: "tie")
    if setup == "only ai":
        robot = make_user("robot")
        for comparison in Comparison.objects.filter(prompt__campaign=campaign):
            ai_judge(comparison, robot, "a")
    export = dataset_export_create(campaign=campaign, options={}, out_dir=tmp_path)
    with pytest.raises(InputError) as caught:
        dataset_export_run(export=export)
    assert caught.value.message.startswith("Nothing to export from campaign 'Empty'")
    assert message in caught.value.message
    assert os.listdir(tmp_path) == []
    export.refresh_from_db()
    assert export.status == JobStatus.FAILED


def test_a_campaign_without_pairs_cannot_be_exported(tmp_path):
    export = dataset_export_create(campaign=make_campaign("Bare", pairs=0), options={}, out_dir=tmp_path)
    with pytest.raises(InputError) as caught:
        dataset_export_run(export=export)
    assert caught.value.message == "Campaign 'Bare' has no pairs: import or generate some before exporting."


def test_an_export_interrupted_midway_leaves_no_file_and_is_marked_failed(tmp_path, monkeypatch):
    campaign = make_campaign("Crash", pairs=40)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    monkeypatch.setattr("exports.writers.FLUSH_ROWS", 5)
    import exports.pipeline

    real_table, batches = exports.pipeline.trl_table, []

    def crash_on_the_third_batch(*args, **kwargs):
        if len(batches) == 2:
            assert any(name.startswith(".train.parquet.tmp-") for name in os.listdir(tmp_path))
            raise OSError("disk on fire")
        batches.append(1)
        return real_table(*args, **kwargs)

    monkeypatch.setattr(exports.pipeline, "trl_table", crash_on_the_third_batch)
    export = dataset_export_create(campaign=campaign, options={"val_fraction": 0.2}, out_dir=tmp_path)
    with pytest.raises(OSError, match="disk on fire"):
        dataset_export_run(export=export, chunk_size=10)
    assert os.listdir(tmp_path) == []
    export.refresh_from_db()
    assert export.status == JobStatus.FAILED
    assert export.error == "The export stopped (OSError: disk on fire); no file was written."


def test_an_export_runs_once(tmp_path):
    campaign = make_campaign("Once", pairs=1)
    judge_all(campaign, make_user("ann"), lambda c: "a")
    export = run_export(campaign, tmp_path, val_fraction=0.0)
    with pytest.raises(ConflictError, match=f"Export {export.pk} is succeeded, not queued: it runs once."):
        dataset_export_run(export=export)


def test_queries_do_not_grow_with_the_number_of_pairs(tmp_path):
    def queries_for(pairs: int) -> int:
        campaign = make_campaign(f"Q{pairs}", pairs=pairs, overlap=2)
        for name in ("a", "b"):
            judge_all(campaign, make_user(f"{name}{pairs}"), lambda c: "a")
        export = dataset_export_create(campaign=campaign, options={}, out_dir=tmp_path / str(pairs))
        with CaptureQueriesContext(connection) as queries:
            dataset_export_run(export=export)
        return len(queries)

    assert queries_for(5) == queries_for(60)
