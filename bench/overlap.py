"""Fixed against adaptive overlap on the real pairs: votes spent, and how often the export agrees with people.

The 725 pairs of ../shared/data/human-preferences.jsonl are imported as a campaign (through the product's
importer), once per overlap rule. Simulated annotators then work through the product's own queue
(`assignment_next` / `judgment_submit`, so the rule is applied exactly as the web app applies it) until nothing
is left for anyone, and the campaign is exported as the product exports it (`export_preferences`' decisions:
majority of people's votes). Reported per rule:

- votes: people's judgments spent; per pair: votes / pairs;
- exported: pairs with a majority for a side (a 1-1 split or a tie majority is dropped, as the export drops it);
- match: the share of exported pairs whose chosen side is the file's human label (the 708 pairs labelled a or
  b; the 17 labelled tie are judged too but never count as a match);
- matched of labelled: matched pairs as a share of the 708 labelled a or b;
- match per 1k votes: matched pairs per thousand votes spent, the yield of an hour of annotation.

The annotators: a pool of 12, each right with their own probability (`--accuracy`, the pool's mean; spread
evenly over mean +-0.1), and pairs of varying difficulty: on pair j an annotator of accuracy a is right with
probability 0.5 + (a - 0.5) * e_j / E[e], e_j ~ Beta(2, 1), clipped to [0.5, 1] (some pairs are near coin flips
for everyone, most are easier). Tie-labelled pairs are coin flips. Everything is seeded; each rule runs on the
same annotators and pairs for each seed, and the table shows the mean over `--seeds` seeds.

    .venv/bin/python bench/overlap.py                                   # fixed 3 vs adaptive 2-3, 3 seeds
    .venv/bin/python bench/overlap.py --rules 3,2-3,2-5 --accuracy 0.7 --seeds 5
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "human-preferences.jsonl"
ANNOTATORS = 12


def django_setup(data_dir: Path) -> None:
    os.environ["PREFSTUDIO_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def parse_rule(text: str) -> tuple[int | None, int]:
    """'3' is a fixed overlap of 3; '2-3' adaptive, 2 votes at least and 3 at most."""
    low, _, high = text.partition("-")
    return (int(low), int(high)) if high else (None, int(low))


def run_rule(rule: str, *, seed: int, accuracy: float, margin: int) -> dict:
    from django.contrib.auth import get_user_model

    from annotator.importing import pairs_import_file
    from annotator.models import Choice, Comparison, JudgeSource, Judgment, Side, Verdict
    from annotator.services import assignment_next, judgment_submit
    from exports.aggregation import VERDICTS, pairs_decide

    min_votes, max_votes = parse_rule(rule)
    name = f"overlap {rule} seed {seed}"
    with DATA.open("rb") as file:
        campaign = pairs_import_file(file, name=DATA.name, campaign_name=name).campaign
    campaign.overlap, campaign.min_votes, campaign.settle_margin = max_votes, min_votes, margin
    campaign.save(update_fields=["overlap", "min_votes", "settle_margin"])

    rng = random.Random(seed)
    User = get_user_model()
    spread = [accuracy - 0.1 + 0.2 * i / (ANNOTATORS - 1) for i in range(ANNOTATORS)]
    people = [(User.objects.get_or_create(username=f"sim{i}")[0], min(1.0, max(0.5, a))) for i, a in enumerate(spread)]
    comparisons = list(Comparison.objects.filter(prompt__campaign=campaign).order_by("id"))
    # The same difficulty per pair for every rule of a seed: drawn from a generator of its own, in file order.
    difficulty_rng = random.Random(seed * 7919)
    ease = {c.pk: difficulty_rng.betavariate(2, 1) / (2 / 3) for c in comparisons}
    label = {c.pk: c.metadata.get("label") for c in comparisons}

    started = time.perf_counter()
    active = list(people)
    while active:
        annotator, skill = active[rng.randrange(len(active))]
        assignment = assignment_next(campaign=campaign, annotator=annotator)
        if assignment is None:
            active = [(a, s) for a, s in active if a.pk != annotator.pk]
            continue
        truth = label[assignment.comparison_id]
        if truth in (Side.A, Side.B):
            right = rng.random() < min(1.0, max(0.5, 0.5 + (skill - 0.5) * ease[assignment.comparison_id]))
            verdict = truth if right else (Side.B if truth == Side.A else Side.A)
        else:
            verdict = rng.choice([Side.A, Side.B])
        choice = Choice.LEFT if verdict == assignment.shown_left else Choice.RIGHT
        judgment_submit(comparison=assignment.comparison, annotator=annotator, choice=choice)
    seconds = time.perf_counter() - started

    import numpy as np

    votes = Judgment.objects.filter(comparison__prompt__campaign=campaign, source=JudgeSource.HUMAN).exclude(
        verdict=Verdict.SKIP
    )
    tallies = np.zeros((len(comparisons), 1, len(VERDICTS)), dtype=np.int64)
    index = {c.pk: i for i, c in enumerate(comparisons)}
    for comparison_id, verdict in votes.values_list("comparison_id", "verdict"):
        tallies[index[comparison_id], 0, VERDICTS.index(verdict)] += 1
    decisions = pairs_decide(tallies, judges="humans")
    exported = matched = 0
    for c, kept, majority in zip(comparisons, decisions.kept, decisions.majority, strict=True):
        if kept:
            exported += 1
            matched += VERDICTS[majority] == label[c.pk]
    decisive = sum(1 for c in comparisons if label[c.pk] in (Side.A, Side.B))
    return {
        "pairs": len(comparisons),
        "decisive": decisive,
        "votes": int(tallies.sum()),
        "exported": exported,
        "matched": matched,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", default="3,2-3", help="comma-separated: N fixed, MIN-MAX adaptive (default 3,2-3)")
    parser.add_argument("--accuracy", type=float, default=0.75, help="the annotators' mean accuracy (default 0.75)")
    parser.add_argument("--margin", type=int, default=2, help="adaptive: settled on a lead of this many votes")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this bench reads the shared real pairs (../shared beside the repository).")

    with tempfile.TemporaryDirectory(prefix="prefstudio-overlap-") as data_dir:
        django_setup(Path(data_dir))
        results: dict[str, list[dict]] = {rule: [] for rule in args.rules.split(",")}
        for seed in range(args.seeds):
            for rule in results:
                results[rule].append(run_rule(rule, seed=seed, accuracy=args.accuracy, margin=args.margin))

    first = next(iter(results.values()))[0]
    print(
        f"\n{first['pairs']} pairs ({first['decisive']} labelled a or b), {ANNOTATORS} simulated annotators of mean "
        f"accuracy {args.accuracy:.2f}, adaptive margin {args.margin}, mean of {args.seeds} seeds\n"
    )
    print("| overlap | votes | votes/pair | exported | match | matched of labelled | match per 1k votes | s per run |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for rule, runs in results.items():
        votes = statistics.mean(r["votes"] for r in runs)
        exported = statistics.mean(r["exported"] for r in runs)
        matched = statistics.mean(r["matched"] for r in runs)
        kind = f"fixed {rule}" if "-" not in rule else f"adaptive {rule}"
        print(
            f"| {kind} | {votes:,.0f} | {votes / first['pairs']:.2f} | {exported:,.0f} | "
            f"{matched / exported:.1%} | {matched / first['decisive']:.1%} | {1000 * matched / votes:.0f} | "
            f"{statistics.mean(r['seconds'] for r in runs):.1f} |"
        )


if __name__ == "__main__":
    main()
