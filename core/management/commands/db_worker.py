"""`manage.py db_worker`: django-tasks-db's worker, which first marks failed the jobs whose process died.

A worker killed with SIGKILL (or a machine that went down) cannot record anything; its job would stay
"running" forever. Its heartbeat stopped, though: at start-up every running job silent for longer than
JOB_STALE_SECONDS is marked failed, with what to do next.
"""

from typing import Any

from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand

from core.jobs import jobs_fail_stale


class Command(DatabaseWorkerCommand):
    help = DatabaseWorkerCommand.help + " Jobs whose process died (no heartbeat) are marked failed first."

    def handle(self, *args: Any, **options: Any) -> None:
        stale = jobs_fail_stale()
        if stale:
            self.stdout.write(f"Marked {stale} job(s) failed: their process stopped without a word (no heartbeat).")
        super().handle(*args, **options)
