from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import Surface, command_errors
from core.interrupts import sigterm_as_exit
from core.options import options_add_arguments, options_from_arguments
from rounds.models import Round, Series
from rounds.options import PEOPLE, SeriesOptions
from rounds.selectors import (
    round_get,
    round_label_progress,
    round_labeller,
    round_next,
    round_steps,
    round_waits_for_people,
)
from rounds.services import round_advance, round_run, round_start, round_step_create, round_step_execute, series_start


class Command(BaseCommand):
    help = (
        "Iterative DPO, one round at a time: sample from the policy, label, export, train, evaluate the tuned model "
        "against its policy. `start` a series (or its next round), `advance` a round, see its `status`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{start,advance,status}")
        start = actions.add_parser(
            "start", help="Start a series with its settings (round 1), or the next round of an existing series."
        )
        start.add_argument("--series", required=True, help="The series' name.")
        options_add_arguments(start, SeriesOptions, title="the series' settings (only when it starts)")
        for name, text in (
            ("advance", "Run the round's next step here (or queue it with --background)."),
            ("status", "Where the round stands and what is left to do."),
        ):
            action = actions.add_parser(name, help=text)
            target = action.add_mutually_exclusive_group(required=True)
            target.add_argument("--round", type=int, help="The round's id.")
            target.add_argument("--series", help="A series' name: its latest round.")
        advance = actions.choices["advance"]
        advance.add_argument(
            "--all", action="store_true", help="Go on with the next steps until the round is done or people are needed."
        )
        advance.add_argument(
            "--anyway", action="store_true", help="People are done: go on with what they judged (the judge fills in)."
        )
        advance.add_argument(
            "--background", action="store_true", help="Queue the step for `manage.py db_worker` instead."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with command_errors(), sigterm_as_exit():
            getattr(self, f"_{options['action']}")(options)

    # -----------------------------------------------------------------------------------------------------

    def _start(self, options: dict[str, Any]) -> None:
        given = options_from_arguments(SeriesOptions, options)
        series = Series.objects.filter(name=options["series"].strip()).first()
        if series is None:
            settings = SeriesOptions.from_mapping(given)
            round = series_start(name=options["series"], options=settings)
            self.stdout.write(self.style.SUCCESS(f"Series {round.series.name!r} started."))
        else:
            if given:
                flags = ", ".join(SeriesOptions.option_name(name, Surface.COMMAND_LINE) for name in sorted(given))
                raise CommandError(
                    f"Series {series.name!r} exists and its rounds share its settings: drop {flags}, or start a new "
                    "series under another name."
                )
            round = round_start(series=series)
        self.stdout.write(f"Round {round.number} (id {round.pk}) samples from {round.policy_model}.")
        self.stdout.write(f"Next: manage.py round advance --round {round.pk} [--all]")

    def _advance(self, options: dict[str, Any]) -> None:
        round = self._round(options)
        if not options["anyway"] and round_labeller(round=round) == PEOPLE and round_waits_for_people(round=round):
            progress = round_label_progress(round=round)
            raise CommandError(
                f"{round}: {progress.text}; {progress.left} still wait for people. Let them finish, or go on with "
                "what is judged: --anyway."
            )
        if options["background"]:
            job = round_advance(round=round, anyway=options["anyway"], chain=options["all"])
            self.stdout.write(
                f"{job.get_step_display()} of {round} queued (round step {job.pk}): manage.py db_worker runs it."
            )
            return
        if options["all"]:
            round = round_run(round=round, people_done=options["anyway"])
        else:
            round_step_execute(job=round_step_create(round=round, anyway=options["anyway"]))
        self._status_write(round_get(pk=round.pk))

    def _status(self, options: dict[str, Any]) -> None:
        self._status_write(self._round(options))

    # -----------------------------------------------------------------------------------------------------

    def _round(self, options: dict[str, Any]) -> Round:
        if options["round"] is not None:
            round = round_get(pk=options["round"])
            if round is None:
                raise CommandError(f"No round with id {options['round']}: `manage.py round status --series NAME`.")
            return round
        series = Series.objects.filter(name=options["series"]).first()
        latest = series.rounds.order_by("-number").first() if series else None
        if latest is None:
            raise CommandError(f"No series named {options['series']!r} with a round: `manage.py round start` one.")
        return round_get(pk=latest.pk)

    def _status_write(self, round: Round) -> None:
        self.stdout.write(f"{round} (id {round.pk}): {round.get_step_display().lower()}.")
        for view in round_steps(round=round):
            line = f"  {view.label:<20} {view.state:<9} {view.detail}".rstrip()
            self.stdout.write(line)
            if view.state == "failed" and view.job is not None:
                self.stdout.write(self.style.ERROR(f"    {view.job.error}"))
        if round.win_rate is not None:
            self.stdout.write(
                f"Win rate against the policy: {round.win_rate:.2f} "
                f"(95% CI {round.win_rate_low:.2f}-{round.win_rate_high:.2f}, {round.eval_pairs} pairs)."
            )
        self.stdout.write(round_next(round=round))
