"""The web app with cProfile around every request, for `bench/annotate.py --profile DIR` (gunicorn loads it
in place of config.wsgi, one thread per worker: cProfile profiles the thread that enables it).

The clock is the thread's CPU time (time.thread_time), not the wall clock: a request waiting for a lock
(SQLite's write lock, a PostgreSQL row lock) or for the database shows only the CPU it spent, so the shares
are those of the CPU per judgment that the bench measures. Each worker writes its statistics to
DIR/<pid>.prof every 200 requests and when it exits; the bench reads them all and prints where the time went.
Profiling slows every call down (about 2x): read it for the shares, not the absolute figures.
"""

import atexit
import cProfile
import os
import time
from pathlib import Path

from config.wsgi import application as _application

_directory = Path(os.environ["PREFSTUDIO_PROFILE_DIR"])
_profiler = cProfile.Profile(timer=time.thread_time)
_requests = 0


def _dump() -> None:
    if _requests:  # not the arbiter, which imports this (preloading) but serves nothing
        _profiler.dump_stats(_directory / f"{os.getpid()}.prof")


atexit.register(_dump)


def application(environ: dict, start_response):
    global _requests
    _profiler.enable()
    try:
        # The response is a list of bytes here (no streaming on the annotation path), so all the work is inside.
        return _application(environ, start_response)
    finally:
        _profiler.disable()
        _requests += 1
        if _requests % 200 == 0:
            _dump()
