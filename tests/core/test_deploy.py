"""Deployment: the web app refuses the development secret key with DEBUG off, and `.env.example`'s production
settings pass `manage.py check --deploy`. Each in its own process, since the settings are read at start."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(settings.BASE_DIR)
REFUSAL = "DEBUG is off and SECRET_KEY is the built-in development key"
HOW_TO = "Set DJANGO_SECRET_KEY in the server's environment"


def documented_production_env() -> dict[str, str]:
    """`.env.example`'s settings (its `KEY=value` lines), with the secret key it leaves for you to fill in."""
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    assert values["DJANGO_SECRET_KEY"] == "", "the example leaves the secret to the operator"
    return {**values, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}


def environment(tmp_path: Path, **values: str) -> dict[str, str]:
    """This machine's environment less every Django and Preference Studio setting, plus `values`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PREFSTUDIO_", "DATABASE_"))}
    return {**base, **values, "PREFSTUDIO_DATA_DIR": str(tmp_path)}


def run(command: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], env)


def test_check_deploy_is_clean_on_the_documented_production_settings(tmp_path):
    env = environment(tmp_path, **documented_production_env())
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_reports_the_development_key_as_an_error(tmp_path):
    done = manage("check", "--deploy", env=environment(tmp_path, DJANGO_DEBUG="0"))
    assert done.returncode == 1
    assert f"(prefstudio.E001) {REFUSAL}" in done.stderr and HOW_TO in done.stderr


@pytest.mark.slow
def test_gunicorn_refuses_to_start_on_the_development_key_with_debug_off(tmp_path):
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "config.wsgi", "--bind=127.0.0.1:0", "--workers=1"]
    done = run(command, environment(tmp_path, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=""))
    assert done.returncode != 0
    assert REFUSAL in done.stderr and HOW_TO in done.stderr and "Worker failed to boot" in done.stderr


@pytest.mark.slow
def test_runserver_refuses_to_start_on_the_development_key_with_debug_off(tmp_path):
    done = manage("runserver", "--noreload", "127.0.0.1:0", env=environment(tmp_path))
    assert done.returncode != 0
    assert REFUSAL in done.stderr and HOW_TO in done.stderr


@pytest.mark.slow
def test_the_asgi_application_refuses_too_and_both_start_with_debug_on(tmp_path):
    script = "import config.asgi, config.wsgi; print('loaded')"
    refused = run([sys.executable, "-c", script], environment(tmp_path))
    assert refused.returncode != 0 and REFUSAL in refused.stderr
    debug = run([sys.executable, "-c", script], environment(tmp_path, DJANGO_DEBUG="1"))
    assert debug.returncode == 0 and debug.stdout.strip() == "loaded", debug.stderr
    production = run([sys.executable, "-c", script], environment(tmp_path, **documented_production_env()))
    assert production.returncode == 0 and production.stdout.strip() == "loaded", production.stderr
