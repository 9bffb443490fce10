"""The rule that the web app never serves on a secret key anyone can read, and where it is enforced.

With DEBUG off, a key Django marks "django-insecure-" (the built-in development key, or one from
`startproject`) would sign sessions, CSRF tokens and password-reset links with a value published in the source.
`manage.py check --deploy` reports it as prefstudio.E001; `serving_refuse_if_unsafe` raises the same message
from the WSGI and ASGI applications, which runserver, gunicorn and uvicorn all load (none of the production
servers runs system checks), so the app cannot start serving on it. Commands that serve nothing (migrate,
import_pairs, train_dpo, ...) keep working on the local defaults.
"""

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

DEVELOPMENT_KEY_REFUSAL = (
    "DEBUG is off and SECRET_KEY is the built-in development key (or another 'django-insecure-' key): anyone can "
    "read it, and forge sessions and password-reset links signed with it."
)
DEVELOPMENT_KEY_HINT = (
    "Set DJANGO_SECRET_KEY in the server's environment to a long random string, e.g. the output of "
    '`python -c "import secrets; print(secrets.token_urlsafe(50))"` (see .env.example); '
    "for local development set DJANGO_DEBUG=1 instead."
)


@register(Tags.security, deploy=True)
def secret_key_check(app_configs=None, **kwargs) -> list[Error]:
    if settings.DEBUG or not settings.SECRET_KEY.startswith("django-insecure-"):
        return []
    return [Error(DEVELOPMENT_KEY_REFUSAL, hint=DEVELOPMENT_KEY_HINT, id="prefstudio.E001")]


def serving_refuse_if_unsafe() -> None:
    """Raise ImproperlyConfigured, with what to do, when the app must not serve (see the module's docstring)."""
    for error in secret_key_check():
        raise ImproperlyConfigured(f"{error.msg} {error.hint} ({error.id})")
