from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotator import degrade
from annotator.models import Campaign
from annotator.sentinels import sentinel_rate_set, sentinels_create
from core.errors import command_errors


class Command(BaseCommand):
    help = (
        "Make sentinel pairs for a campaign: one of its responses against a degraded copy (cut mid-sentence, "
        "sentences shuffled, or another prompt's answer), whose better side is known. With --rate, annotators "
        "get that share of sentinels among their pairs; the quality report shows each one's sentinel accuracy."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True, help="The campaign's name.")
        parser.add_argument("--count", type=int, default=20, help="Sentinel pairs to make now (default 20).")
        parser.add_argument("--seed", type=int, default=0, help="Which responses and cuts (default 0).")
        parser.add_argument(
            "--kinds",
            default=",".join(degrade.KINDS),
            help=f"Comma-separated, taken in turn (default {','.join(degrade.KINDS)}).",
        )
        parser.add_argument("--rate", type=float, help="Set the campaign's sentinel rate too (0 to 0.5).")

    def handle(self, *args, campaign: str, count: int, seed: int, kinds: str, rate: float | None, **options) -> None:
        target = Campaign.objects.filter(name=campaign, sentinel_of__isnull=True).first()
        if target is None:
            raise CommandError(f"No campaign named {campaign!r}: give the name of an existing campaign.")
        with command_errors():
            result = sentinels_create(
                campaign=target, count=count, seed=seed, kinds=[k.strip() for k in kinds.split(",") if k.strip()]
            )
            if rate is not None:
                sentinel_rate_set(campaign=target, rate=rate)
        made = ", ".join(f"{n} {kind}" for kind, n in sorted(result.created.items())) or "none"
        self.stdout.write(
            self.style.SUCCESS(
                f"Made {sum(result.created.values())} sentinel pair(s) for {target.name!r} ({made}); "
                f"it has {result.total} in all."
            )
        )
        target.refresh_from_db()
        if not target.sentinel_rate:
            self.stdout.write(
                "Annotators get none until the campaign's sentinel rate is set: rerun with --rate 0.1, say, "
                "or set it in the admin."
            )
