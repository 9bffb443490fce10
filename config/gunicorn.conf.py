"""gunicorn's production settings: `gunicorn -c config/gunicorn.conf.py config.wsgi` (bind with `--bind`).

Sized on the cores this process may run on; measured on the annotation loop (bench/annotate.py, README's
"Measured > Annotating"). WEB_CONCURRENCY sets the number of workers instead, as on most hosts.
"""

import os

_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * _cores)
worker_class = "gthread"
threads = 1
keepalive = 75  # seconds an idle connection stays open: as long as a browser keeps one, like nginx's default
