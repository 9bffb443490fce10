"""Run `export_preferences` in its own process, a few pairs per batch, slowed down after each row group.

For the tests that interrupt a real export with a signal: they wait until a temporary file exists, then
send SIGTERM or SIGKILL. Usage: python tests/exports/interruptible_export.py <export_preferences args>
(DATABASE_URL must name the test database).
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402

from exports import pipeline, writers  # noqa: E402

pipeline.CHUNK_PAIRS = 4  # a campaign of 40 pairs comes in 10 batches, each flushed: the export takes seconds
writers.FLUSH_ROWS = 2
real_flush = writers.ParquetSplitWriter._flush


def slow_flush(self: writers.ParquetSplitWriter) -> None:
    real_flush(self)
    time.sleep(0.5)


writers.ParquetSplitWriter._flush = slow_flush
call_command("export_preferences", *sys.argv[1:])
