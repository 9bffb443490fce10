import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from core.checks import serving_refuse_if_unsafe  # noqa: E402 - after Django is set up

serving_refuse_if_unsafe()
