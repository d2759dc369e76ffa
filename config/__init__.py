"""Wafaa project configuration.

The Celery app is imported here so that `.delay()` anywhere uses our broker settings
(without it, Celery falls back silently to its default AMQP broker).
"""

from config.celery import app as celery_app

__all__ = ["celery_app"]
