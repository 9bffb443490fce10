"""Django settings for Preference Studio.

Every setting that differs between machines comes from the environment (see `.env.example`), with
working defaults for local use: SQLite in `var/`, DEBUG off, plain HTTP, a development secret key.
The web app refuses to serve on that key with DEBUG off (`core/checks.py`): production sets
DJANGO_SECRET_KEY and the HTTPS switches below, and `manage.py check --deploy` is then clean.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None


# Unset or empty: the development key, which only DEBUG lets the app serve on.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "django-insecure-local-development-key-change-me-in-production"
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# HTTPS, for production (all off by default: local use is plain HTTP). Behind a proxy that terminates TLS,
# DJANGO_SECURE_PROXY_SSL_HEADER=1 trusts its X-Forwarded-Proto: the proxy must set it and drop the client's.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False) else None
)

# Where the app keeps its own files: the default SQLite database, exports, training runs.
DATA_DIR = Path(os.environ.get("PREFSTUDIO_DATA_DIR", BASE_DIR / "var")).resolve()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_htmx",
    "template_partials",
    "csp",
    "core",  # before django_tasks_db: its db_worker marks jobs whose process died before it starts
    "django_tasks",
    "django_tasks_db",
    "llm",
    "annotator",
    "generation",
    "exports",
    "training",
    "quality",
    "rounds",
    "leaderboard",
    "axes",  # last, as its documentation asks
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.db_unavailable.DatabaseUnavailableMiddleware",  # 503 + Retry-After while the database is out of reach
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into its lock-out page
]
if env_bool("PREFSTUDIO_COUNT_QUERIES", False):  # benchmarks only: an X-Queries header on every response
    MIDDLEWARE.insert(0, "core.querycount.QueryCountMiddleware")

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE transactions take SQLite's write lock at BEGIN, so two annotators can never both read
    # "one slot left" and both take it; WAL lets readers go on while one request writes.
    # A file, not memory, for the test database: tests with threads and a live server share it.
    # One per process, so two test runs side by side don't share one.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# A Content-Security-Policy on every response, behind the markdown sanitiser (annotator/rendering.py): scripts,
# styles, images and fonts from the app's own static files only; no inline script, style element or style
# attribute; no plugins, no framing, forms post to the app only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# Logins are rate-limited by django-axes: after PREFSTUDIO_LOGIN_FAILURE_LIMIT failed attempts for one username
# from one address (the login page, the admin's), that pair is locked out for PREFSTUDIO_LOGIN_COOLOFF_MINUTES,
# the right password included. Staff see the attempts, and unlock one by deleting it, in the admin (Axes).
# The API takes tokens and sessions, no passwords, so it has no logins of its own to count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("PREFSTUDIO_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("PREFSTUDIO_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a successful login forgets the failures before it
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # `collectstatic` fills it; WhiteNoise serves it
# Serve static files from the finders when collectstatic has not run (local use, tests, the benchmark).
WHITENOISE_USE_FINDERS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotator:campaign_list"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.TokenAuthentication",  # DRF's, its lookup in one statement
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's parsers, refusing JSON nested too deep and uploads over MAX_UPLOAD_BYTES.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "core.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.StudioPagination",
    "PAGE_SIZE": 50,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Preference Studio API",
    "DESCRIPTION": "Annotate pairs of LLM responses, export preference data, follow training runs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema maps every endpoint, staff ones included: for signed-in users (session or token) only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # One name for a choice set that several fields share (a round's labellers and its evaluation's).
    "ENUM_NAME_OVERRIDES": {"LabellerEnum": "rounds.options.LABELLERS"},
}

# Background work (generation runs, exports, training started from the web UI) goes through Django's
# tasks framework with a database-backed queue; `manage.py db_worker` runs it.
TASKS = {"default": {"BACKEND": os.environ.get("PREFSTUDIO_TASKS_BACKEND", "django_tasks_db.DatabaseBackend")}}

# A running job's process writes a heartbeat this often; one silent for JOB_STALE_SECONDS (its worker was
# killed, its machine went down) is marked failed when a worker starts.
JOB_HEARTBEAT_SECONDS = env_int("PREFSTUDIO_JOB_HEARTBEAT_SECONDS", 30)
JOB_STALE_SECONDS = env_int("PREFSTUDIO_JOB_STALE_SECONDS", 300)

# The OpenAI-compatible servers (`--backend openai`) that runs started from a page, the API or a background job
# may use, comma-separated: each gets OPENAI_API_KEY with every request. Compared whole, after normalising the
# scheme, host, port and trailing slash (http://127.0.0.1:8000/v1/ is http://127.0.0.1:8000/v1). None by
# default; the command line (generate_pairs, judge_pairs) may use any server.
OPENAI_BASE_URLS = env_list("PREFSTUDIO_OPENAI_BASE_URLS", "")

# How long an annotator holds a pair they were shown before its slot goes back to the pool.
ANNOTATION_LEASE_SECONDS = env_int("PREFSTUDIO_LEASE_SECONDS", 600)
# How long after recording a judgment its annotator may still undo it (their latest one only).
ANNOTATION_UNDO_SECONDS = env_int("PREFSTUDIO_UNDO_SECONDS", 300)

# The judge gate (docs/judge.md): an export counts an AI judge's verdicts (`--judges ai|both`) in a campaign that
# audits its judge (`judge_audit_size` > 0) only if, on the audit sample, its Cohen's kappa with the people's
# verdicts is at least JUDGE_GATE_MIN_KAPPA over at least JUDGE_GATE_MIN_PAIRS pairs, and it gave the same
# verdict in both orders on at least JUDGE_GATE_MIN_CONSISTENCY of its pairs.
JUDGE_GATE_MIN_KAPPA = env_float("PREFSTUDIO_JUDGE_GATE_MIN_KAPPA", 0.6)
JUDGE_GATE_MIN_CONSISTENCY = env_float("PREFSTUDIO_JUDGE_GATE_MIN_CONSISTENCY", 0.8)
JUDGE_GATE_MIN_PAIRS = env_int("PREFSTUDIO_JUDGE_GATE_MIN_PAIRS", 30)

# How much one request or file may bring; beyond it, a 400 (or an import error) that names the limit.
# A file upload to the API (the pair import), checked before it is read. Other bodies (JSON, forms) stop at
# Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB; files do not count); an upload over FILE_UPLOAD_MAX_MEMORY_SIZE
# (2.5 MB) is spooled to a temporary file rather than held in memory.
MAX_UPLOAD_BYTES = env_int("PREFSTUDIO_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
# Rows per imported file (pairs, generation's prompts).
MAX_IMPORT_ROWS = env_int("PREFSTUDIO_MAX_IMPORT_ROWS", 100_000)
# Characters of an imported prompt (its messages and system message together) and of a response.
MAX_PROMPT_CHARS = env_int("PREFSTUDIO_MAX_PROMPT_CHARS", 100_000)
MAX_RESPONSE_CHARS = env_int("PREFSTUDIO_MAX_RESPONSE_CHARS", 100_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    # axes says at INFO that it started (every process) and what it does; failed logins and lock-outs are warnings.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
