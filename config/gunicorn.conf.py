"""gunicorn's production settings: `gunicorn -c config/gunicorn.conf.py config.wsgi` (bind with `--bind`).

Sized on the cores this process may run on; measured on the annotation loop (bench/annotate.py, README's
"Measured > Annotating"). WEB_CONCURRENCY sets the number of workers instead, as on most hosts.
"""

import os

_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * _cores)
# Sync workers, one request at a time each: the annotation loop is CPU-bound (a few ms a call, the database's
# waits short), and of the three measured on it, 2 sync workers per core served the most on SQLite (295-302
# judgments/s against 226-251 for 4 gthread threads each and 200-289 for 1) and as much on PostgreSQL
# (154-159 against 154-161 and 159-173), with the lowest p99 on both. Like any sync server they want a buffering
# proxy in front (nginx's default), which holds slow clients and keep-alive connections for them; without one, or
# to serve long downloads directly, run `--worker-class gthread --threads 4`.
worker_class = "sync"
# A sync worker busy longer than this is killed. The longest request is an import through the API: 8.4 MB of
# pairs took 1.6 s here (past start-up), so the largest upload allowed (100 MB, PREFSTUDIO_MAX_UPLOAD_BYTES) about
# 20 s, near gunicorn's default of 30. The import is all or nothing, so a killed one writes nothing, but it fails.
timeout = 120

# Load the app once, in the master, before forking the workers, and import everything a request reaches
# (every URL module, its views and what they import: DRF, the schema generator, ...): otherwise each worker
# pays about a second of CPU for it on its first requests, and again whenever it is replaced. Nothing here
# opens a database connection, so no connection is shared across the fork.
preload_app = True


def when_ready(server) -> None:
    from django.urls import get_resolver
    from rest_framework.settings import api_settings

    get_resolver().url_patterns  # noqa: B018 - imports the URL modules and their views
    for name in ("DEFAULT_AUTHENTICATION_CLASSES", "DEFAULT_PARSER_CLASSES", "DEFAULT_RENDERER_CLASSES"):
        getattr(api_settings, name)  # DRF imports these on first use
