"""The web app with cProfile around every request, for `bench/annotate.py --profile DIR` (gunicorn loads it
in place of config.wsgi, one thread per worker: cProfile profiles the thread that enables it).

Each worker writes its statistics to DIR/<pid>.prof every 200 requests and when it exits; the bench reads
them all and prints where the time went. Profiling slows every call down (about 2x): read it for the
shares, not the absolute figures.
"""

import atexit
import cProfile
import os
from pathlib import Path

from config.wsgi import application as _application

_directory = Path(os.environ["PREFSTUDIO_PROFILE_DIR"])
_profiler = cProfile.Profile()
_requests = 0


def _dump() -> None:
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
