from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotator.importing import ImportResult, pairs_import_file
from annotator.models import Campaign

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
DEMO_CAMPAIGN = "Demo: assistant style"
# Local demo accounts only; their passwords are printed (and in the README) on purpose, hence the DEBUG guard.
DEMO_USERS = [
    ("admin", "admin-demo", True),
    ("alice", "alice-demo", False),
    ("bob", "bob-demo", False),
]


class Command(BaseCommand):
    help = "Create demo accounts and the demo campaign (30 pairs on tone, safety, code style, ...). Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--overlap", type=int, default=2, help="Annotators per pair in the demo campaign.")
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Load it with DEBUG off too (a throwaway server): anyone can log in as admin / admin-demo.",
        )

    def handle(self, *args, overlap: int, allow_without_debug: bool, **options) -> None:
        if not (settings.DEBUG or allow_without_debug):
            raise CommandError(
                "load_demo creates the superuser admin with the published password admin-demo, so it runs only with "
                "DEBUG on: DJANGO_DEBUG=1 manage.py load_demo (make demo sets it). On a throwaway server with DEBUG "
                "off, pass --allow-without-debug."
            )
        with transaction.atomic():
            result = self._load(overlap)
        self.stdout.write(self.style.SUCCESS(f"Demo campaign {DEMO_CAMPAIGN!r}: {result.imported} new pair(s)."))
        self.stdout.write("Demo logins (local use only):")
        for username, password, staff in DEMO_USERS:
            role = "(staff: admin, exports, training)" if staff else "(annotator)"
            self.stdout.write(f"  {username:<6} / {password:<11} {role}")

    def _load(self, overlap: int) -> ImportResult:
        User = get_user_model()
        for username, password, staff in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.is_staff = user.is_superuser = staff
                user.save()
        with (DEMO_DIR / "demo_pairs.jsonl").open("rb") as stream:
            result = pairs_import_file(stream, name="demo_pairs.jsonl", campaign_name=DEMO_CAMPAIGN)
        if result.campaign_created:
            Campaign.objects.filter(pk=result.campaign.pk).update(
                guidelines=(DEMO_DIR / "guidelines.md").read_text(),
                description="Thirty pairs on tone, politeness, brand voice, clarity, code style and safety.",
                overlap=overlap,
            )
        return result
