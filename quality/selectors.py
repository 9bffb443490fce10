"""Reads for the quality report, counted by the database: the report never loads a campaign's judgments or
texts, only their counts in groups (kinds of pairs, annotators by day), a few rows each.

Counting each pair's votes and then the pairs with the same counts is a grouping over aggregates (or over
window functions), which the ORM cannot write: `_grouped` runs the ORM's queries as derived tables and
groups their rows again in plain SQL that SQLite and PostgreSQL read alike."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    DateField,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RowRange, Window
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Concat, Length, RowNumber
from django.db.models.lookups import GreaterThan

from annotator.models import Campaign, Candidate, Comparison, JudgeAuditPair, JudgeSource, Judgment, Ranking, Verdict
from quality.stats import Tally, wilson_interval

COUNTED = (Verdict.A, Verdict.B, Verdict.TIE, Verdict.BOTH_BAD)  # every verdict but skip
DECISIVE = (Verdict.A, Verdict.B)
INCONSISTENT_MARK = "!"  # after a verdict: the AI judge's two orders disagreed on it (it was recorded as a tie)


def _sql(rows: QuerySet, alias: str) -> tuple[str, list]:
    """The ORM's query as a derived table named alias, and its parameters."""
    sql, params = rows.order_by().query.sql_with_params()
    return f"({sql}) {alias}", list(params)


def _name(column: str) -> str:
    return connection.ops.quote_name(column)


def _grouped(source: tuple[str, list], keys: Sequence[str], totals: Sequence[str] = ()) -> list[tuple]:
    """`SELECT keys, SUM(total) for each total, COUNT(*) FROM source GROUP BY keys`: source is SQL and its
    parameters (derived tables of ORM queries, from `_sql`), keys are column names of it, totals SQL
    expressions over its columns."""
    text, params = source
    columns = ", ".join(_name(key) for key in keys)
    sums = "".join(f", SUM({total})" for total in totals)
    # Names quoted, expressions built from constants, values passed as parameters.
    query = f"SELECT {columns}{sums}, COUNT(*) FROM {text} GROUP BY {columns}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def _literal(verdict: str) -> str:
    assert verdict.isidentifier(), verdict  # one of ours: safe as an SQL literal
    return f"'{verdict}'"


def _judgments(campaign: Campaign) -> QuerySet:
    """The judgments of the campaign's pairs, filtered as `comparison_id IN (...)`: SQLite then reads them in
    the order of the pairs, so grouping them by pair needs no sort."""
    return Judgment.objects.filter(comparison__in=Comparison.objects.filter(campaign=campaign))


def _tally_columns(prefix: str) -> list[str]:
    return [f"{prefix}_{verdict}" for verdict in COUNTED]


def _tally(counts: Sequence[int | None]) -> Tally:
    return {verdict: int(count or 0) for verdict, count in zip(COUNTED, counts, strict=True)}


# ---------------------------------------------------------------------------------------------------------
# Pairs


@dataclass(frozen=True)
class PairGroup:
    """Pairs of a campaign alike in everything the report reads of them: how many, and what they share."""

    pairs: int
    human: Tally  # people's votes that count (all but skips)
    human_skips: int
    ai: Tally  # the AI judges' votes that count
    ai_judgments: int  # the AI judges' judgments, unparseable ones (skips) included
    ai_first: str | None  # the earliest AI verdict that counts
    ai_first_inconsistent: bool  # that verdict is a tie recorded for an inconsistent pair (orders disagreed)
    longer: str | None  # the candidate ("a" or "b") with more characters; None when both are as long
    model_a: str
    model_b: str
    a_side: str | None  # candidate a's metadata "model": "a" from `generate_pairs --model`, "b" from --model-b
    # The AI judges' details, summed over the group's pairs: verdicts alike in both orders or not, and
    # unparseable answers.
    ai_consistent: int
    ai_inconsistent: int
    ai_inconsistent_ties: int  # ties recorded because the orders disagreed (the rest of ai's ties are real ones)
    ai_unparseable: int


def campaign_pair_groups(*, campaign: Campaign) -> list[PairGroup]:
    """The campaign's pairs, judged or not, grouped by their votes' counts, the longer side and the models."""
    human, ai = Q(source=JudgeSource.HUMAN), Q(source=JudgeSource.AI)
    votes = (
        _judgments(campaign)
        .values("comparison_id")
        .annotate(
            **{f"human_{verdict}": Count("id", filter=human & Q(verdict=verdict)) for verdict in COUNTED},
            human_skips=Count("id", filter=human & Q(verdict=Verdict.SKIP)),
            **{f"ai_{verdict}": Count("id", filter=ai & Q(verdict=verdict)) for verdict in COUNTED},
            ai_judgments=Count("id", filter=ai),
            ai_consistent=Count("id", filter=ai & Q(details__consistent=True)),
            ai_inconsistent=Count("id", filter=ai & Q(details__consistent=False)),
            ai_inconsistent_ties=Count("id", filter=ai & Q(verdict=Verdict.TIE, details__consistent=False)),
            ai_unparseable=Sum(Cast(KeyTextTransform("unparseable", "details"), IntegerField()), filter=ai),
        )
    )
    # The earliest AI verdict, marked INCONSISTENT_MARK when the judge's two orders disagreed on it: one
    # correlated subquery for both.
    first_ai_verdict = (
        Judgment.objects.filter(comparison=OuterRef("pk"), source=JudgeSource.AI)
        .exclude(verdict=Verdict.SKIP)
        .order_by("created_at", "id")
        .values(
            marked=Concat(
                "verdict",
                Case(When(details__consistent=False, then=Value(INCONSISTENT_MARK)), default=Value("")),
                output_field=CharField(),
            )
        )[:1]
    )
    length_a, length_b = Length("candidate_a__text"), Length("candidate_b__text")
    pairs = Comparison.objects.filter(campaign=campaign).values(
        "pk",
        ai_first=Subquery(first_ai_verdict, output_field=CharField()),
        longer=Case(
            When(GreaterThan(length_a, length_b), then=Value("a")),
            When(GreaterThan(length_b, length_a), then=Value("b")),
            default=Value(None),
            output_field=CharField(),
        ),
        model_a=F("candidate_a__model_name"),
        model_b=F("candidate_b__model_name"),
        a_side=KeyTextTransform("model", "candidate_a__metadata"),
    )
    # Lengths and models once per pair, the votes' counts per pair, then the pairs grouped.
    (pairs_sql, pairs_params), (votes_sql, votes_params) = _sql(pairs, "pairs"), _sql(votes, "votes")
    source = (
        f"{pairs_sql} LEFT JOIN {votes_sql} ON votes.{_name('comparison_id')} = pairs.{_name('pk')}",
        pairs_params + votes_params,
    )
    keys = [*_tally_columns("human"), "human_skips", *_tally_columns("ai"), "ai_judgments", "ai_first", "longer",
            "model_a", "model_b", "a_side"]  # fmt: skip
    summed = ("ai_consistent", "ai_inconsistent", "ai_inconsistent_ties", "ai_unparseable")
    totals = [_name(column) for column in summed]
    groups = []
    for row in _grouped(source, keys, totals):
        human, (skips,), ai, (ai_judgments, ai_first, longer, model_a, model_b, a_side), sums, (n,) = (
            row[0:4], row[4:5], row[5:9], row[9:15], row[15:19], row[19:]
        )  # fmt: skip
        consistent, inconsistent, inconsistent_ties, unparseable = (int(total or 0) for total in sums)
        first_inconsistent = ai_first is not None and ai_first.endswith(INCONSISTENT_MARK)
        groups.append(
            PairGroup(
                pairs=n, human=_tally(human), human_skips=int(skips or 0), ai=_tally(ai),
                ai_judgments=int(ai_judgments or 0), ai_first=ai_first.removesuffix(INCONSISTENT_MARK) if ai_first
                else None, ai_first_inconsistent=first_inconsistent, longer=longer, model_a=model_a,
                model_b=model_b, a_side=a_side, ai_consistent=consistent, ai_inconsistent=inconsistent,
                ai_inconsistent_ties=inconsistent_ties, ai_unparseable=unparseable,
            )
        )  # fmt: skip
    return groups


MIN_JUDGED_TO_FLAG = 5  # fewer sentinel judgments than this say too little to flag anyone


@dataclass(frozen=True)
class SentinelScore:
    annotator_id: int
    username: str
    judged: int  # sentinel pairs judged (skips left out)
    correct: int  # of those, the original preferred
    ci95: tuple[float, float] | None
    flagged: bool  # at least MIN_JUDGED_TO_FLAG judged, and accuracy under the campaign's threshold

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.judged if self.judged else None


def campaign_sentinel_scores(*, campaign: Campaign) -> list[SentinelScore]:
    """Each annotator's accuracy on the campaign's sentinel pairs (annotator.sentinels), with a 95% Wilson
    interval, by username: one grouped query."""
    votes = (
        Judgment.objects.filter(comparison__campaign__sentinel_of=campaign, source=JudgeSource.HUMAN)
        .exclude(verdict=Verdict.SKIP)
        .values("annotator_id", "annotator__username")
        .annotate(judged=Count("*"), correct=Count("pk", filter=Q(verdict=Verdict.A)))
        .order_by("annotator__username")
    )
    return [
        SentinelScore(
            annotator_id=row["annotator_id"],
            username=row["annotator__username"],
            judged=row["judged"],
            correct=row["correct"],
            ci95=wilson_interval(row["correct"], row["judged"]),
            flagged=row["judged"] >= MIN_JUDGED_TO_FLAG
            and row["correct"] / row["judged"] < campaign.sentinel_min_accuracy,
        )
        for row in votes
    ]


def campaign_strengths(*, campaign: Campaign) -> dict[str, int]:
    """People's votes for a side by the strength they gave ("" when they gave none): one query."""
    votes = Judgment.objects.filter(
        comparison__campaign=campaign, source=JudgeSource.HUMAN, verdict__in=[Verdict.A, Verdict.B]
    )
    return dict(votes.order_by().values_list("strength").annotate(n=Count("*")).values_list("strength", "n"))


def campaign_edits(*, campaign: Campaign) -> dict[str, int]:
    """Annotators' edits, and how the pairs of an edit against its source were judged (edit wins, source wins,
    other): two queries."""
    edits = Candidate.objects.filter(prompt__campaign=campaign, edited_from__isnull=False)
    votes = Judgment.objects.filter(
        comparison__candidate_a__in=edits, comparison__candidate_b=F("comparison__candidate_a__edited_from")
    ).filter(source=JudgeSource.HUMAN)
    by_verdict = dict(votes.order_by().values_list("verdict").annotate(n=Count("*")).values_list("verdict", "n"))
    return {
        "edits": edits.count(),
        "edit_preferred": by_verdict.get(Verdict.A, 0),
        "source_preferred": by_verdict.get(Verdict.B, 0),
        "other_votes": sum(n for verdict, n in by_verdict.items() if verdict not in (Verdict.A, Verdict.B)),
    }


def campaign_rankings(*, campaign: Campaign) -> dict[str, int]:
    """Live rankings and the pairs' judgments derived from them: two queries."""
    rankings = Ranking.objects.filter(prompt__campaign=campaign, withdrawn_at__isnull=True)
    derived = Judgment.objects.filter(ranking__in=rankings)
    return {"rankings": rankings.count(), "derived_judgments": derived.count()}


def campaign_pairs_complete(*, campaign: Campaign) -> int:
    """Pairs that want no more people's votes: with the overlap's number, or settled (adaptive overlap)."""
    pairs = Comparison.objects.filter(campaign=campaign)
    return pairs.filter(Q(human_votes__gte=campaign.overlap) | Q(settled=True)).count()


def campaign_first_votes(*, campaign: Campaign, votes: int) -> list[tuple[Tally, int]]:
    """The first `votes` people's votes that count (oldest first) of each pair with at least that many, as
    tallies, each with how many pairs have it."""
    pair, oldest_first = [F("comparison_id")], [F("created_at").asc(), F("id").asc()]
    so_far = RowRange(start=None, end=0)
    running = {
        column: Window(Count("id", filter=Q(verdict=verdict)), partition_by=pair, order_by=oldest_first, frame=so_far)
        for column, verdict in zip(_tally_columns("first"), COUNTED, strict=True)
    }
    ranked = (
        _judgments(campaign)
        .filter(source=JudgeSource.HUMAN)
        .exclude(verdict=Verdict.SKIP)
        .annotate(rank=Window(RowNumber(), partition_by=pair, order_by=oldest_first), **running)
        .filter(rank=votes)  # the vote whose running counts are those of the first `votes`
        .values(*running)
    )
    return [(_tally(row[:4]), int(row[4])) for row in _grouped(_sql(ranked, "ranked"), list(running))]


# ---------------------------------------------------------------------------------------------------------
# Annotators


@dataclass(frozen=True)
class AnnotatorDay:
    """One annotator's votes of one day (UTC)."""

    annotator_id: int
    username: str
    day: date
    judgments: int  # votes that count (all but skips)
    skips: int
    decisive: int  # votes for a or b
    left_wins: int  # decisive votes for the candidate shown on the left
    agrees: int  # votes that match the majority of the other votes on their pair
    with_majority: int  # votes whose pair's other votes have a majority


def _leave_one_out(column_of: dict[str, str]) -> tuple[str, str]:
    """SQL for (agrees, has a majority to agree with) of one vote, given the columns holding its pair's
    counts by verdict (its own vote included): its verdict's count less one against each other count."""
    agrees, with_majority = [], []
    for own in COUNTED:
        mine, rest = f"({_name(column_of[own])} - 1)", [_name(column_of[v]) for v in COUNTED if v != own]
        agree = " AND ".join(f"{mine} > {other}" for other in rest)
        other_wins = " OR ".join(
            "(" + " AND ".join([f"{top} > {mine}", *(f"{top} > {o}" for o in rest if o != top)]) + ")" for top in rest
        )
        when = f"WHEN {_literal(own)} THEN CASE WHEN"
        agrees.append(f"{when} {agree} THEN 1 ELSE 0 END")
        with_majority.append(f"{when} ({agree}) OR {other_wins} THEN 1 ELSE 0 END")
    verdict = _name("verdict")
    return (
        f"CASE {verdict} {' '.join(agrees)} ELSE 0 END",
        f"CASE {verdict} {' '.join(with_majority)} ELSE 0 END",
    )


def campaign_annotator_days(*, campaign: Campaign) -> list[AnnotatorDay]:
    """Per annotator and day: their votes (skips included), how often the left side won, and leave-one-out
    agreement: each vote that counts against the majority of the other votes on its pair (so nobody agrees
    with themselves); a vote whose others split evenly, or that is alone on its pair, is left out."""

    def one_if(condition: Q) -> Case:
        return Case(When(condition, then=Value(1)), default=Value(0))

    pair, decisive = [F("comparison_id")], Q(verdict__in=DECISIVE)
    counts = {
        column: Window(Count("id", filter=Q(verdict=verdict)), partition_by=pair)
        for column, verdict in zip(_tally_columns("pair"), COUNTED, strict=True)
    }
    votes = (
        _judgments(campaign)
        .filter(source=JudgeSource.HUMAN)
        .values(
            "annotator_id",
            "verdict",
            username=F("annotator__username"),
            day=Cast("created_at", DateField()),  # the connection's time zone: UTC
            counted=one_if(~Q(verdict=Verdict.SKIP)),
            skipped=one_if(Q(verdict=Verdict.SKIP)),
            decisive=one_if(decisive),
            left_win=one_if(decisive & Q(verdict=F("shown_left"))),
            **counts,
        )
    )
    agrees, with_majority = _leave_one_out(dict(zip(COUNTED, counts, strict=True)))
    totals = [_name(c) for c in ("counted", "skipped", "decisive", "left_win")] + [agrees, with_majority]
    rows = _grouped(_sql(votes, "votes"), ["annotator_id", "username", "day"], totals)
    return [
        AnnotatorDay(annotator_id, username, day if isinstance(day, date) else date.fromisoformat(day),
                     *(int(total) for total in sums))
        for annotator_id, username, day, *sums, _n in rows
    ]  # fmt: skip


def campaign_median_durations(*, campaign: Campaign) -> tuple[dict[int, float], float | None]:
    """The median time on task (ms) of each annotator's votes that count, and of everyone's: from the middle
    one or two durations of each, as the database sorts them."""
    by_annotator, shortest_first, whole = [F("annotator_id")], F("duration_ms").asc(), RowRange(None, None)

    def middle(rank: str, n: str) -> Q:  # the middle one of n, or the middle two
        return Q(**{rank: (F(n) + 1) / 2}) | Q(**{rank: (F(n) + 2) / 2})

    rows = (
        _judgments(campaign)
        .filter(source=JudgeSource.HUMAN, duration_ms__isnull=False)
        .exclude(verdict=Verdict.SKIP)
        .annotate(
            # Each count over the same ordering as its rank, so the database sorts the durations once for each.
            rank=Window(RowNumber(), partition_by=by_annotator, order_by=shortest_first),
            n=Window(Count("id"), partition_by=by_annotator, order_by=shortest_first, frame=whole),
            rank_all=Window(RowNumber(), order_by=shortest_first),
            n_all=Window(Count("id"), order_by=shortest_first, frame=whole),
        )
        .filter(middle("rank", "n") | middle("rank_all", "n_all"))
        .order_by()
        .values_list("annotator_id", "duration_ms", "rank", "n", "rank_all", "n_all")
    )
    per_annotator: dict[int, list[int]] = {}
    everyone: list[int] = []
    for annotator_id, duration, rank, n, rank_all, n_all in rows:
        if rank in ((n + 1) // 2, (n + 2) // 2):
            per_annotator.setdefault(annotator_id, []).append(duration)
        if rank_all in ((n_all + 1) // 2, (n_all + 2) // 2):
            everyone.append(duration)
    medians = {annotator_id: sum(values) / len(values) for annotator_id, values in per_annotator.items()}
    return medians, sum(everyone) / len(everyone) if everyone else None


# ---------------------------------------------------------------------------------------------------------
# The AI judges' audit samples (quality/gate.py)


@dataclass(frozen=True)
class JudgeAuditCounts:
    """One AI judge of a campaign: its consistency over all its pairs, and each pair of its audit sample with
    the judge's verdict on it (None: unparseable, or its judgment deleted) and people's counted votes."""

    username: str
    consistent: int
    inconsistent: int
    audited: list[tuple[str | None, Tally]]


def campaign_judge_audits(*, campaign: Campaign) -> list[JudgeAuditCounts]:
    """Every AI judge that gave the campaign's pairs a verdict, by username, with its audit sample (three
    queries: the judges' counts over the campaign, their audit pairs, people's votes on those). Reads grow with
    the audit samples, which are small by design, and with one grouped count over the judges' judgments."""
    ai = Q(source=JudgeSource.AI)
    judges = (
        _judgments(campaign)
        .filter(ai)
        .values("annotator_id")
        .annotate(
            username=F("annotator__username"),
            verdicts=Count("id", filter=~Q(verdict=Verdict.SKIP)),
            consistent=Count("id", filter=Q(details__consistent=True)),
            inconsistent=Count("id", filter=Q(details__consistent=False)),
        )
        .filter(verdicts__gt=0)
        .order_by("username")
    )
    audits = JudgeAuditPair.objects.filter(comparison__campaign=campaign)
    judge_verdict = Judgment.objects.filter(
        comparison=OuterRef("comparison_id"), annotator=OuterRef("judge_id"), source=JudgeSource.AI
    ).exclude(verdict=Verdict.SKIP)
    pairs = audits.order_by("judge_id", "comparison_id").values_list(
        "judge_id", "comparison_id", Subquery(judge_verdict.values("verdict")[:1])
    )
    people: dict[int, dict[str, int]] = {}
    votes = (
        Judgment.objects.filter(comparison_id__in=audits.values("comparison_id"), source=JudgeSource.HUMAN)
        .exclude(verdict=Verdict.SKIP)
        .order_by()
        .values_list("comparison_id", "verdict")
        .annotate(n=Count("id"))
    )
    for comparison_id, verdict, n in votes:
        people.setdefault(comparison_id, {})[verdict] = n
    audited: dict[int, list[tuple[str | None, Tally]]] = {}
    for judge_id, comparison_id, verdict in pairs:
        tally = people.get(comparison_id, {})
        audited.setdefault(judge_id, []).append((verdict, _tally([tally.get(v) for v in COUNTED])))
    return [
        JudgeAuditCounts(row["username"], row["consistent"], row["inconsistent"], audited.get(row["annotator_id"], []))
        for row in judges
    ]
