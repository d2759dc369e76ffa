"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

from wafaa.otel import init_otel  # noqa: E402 - after Django is set up

init_otel(service_name="wafaa-web")
