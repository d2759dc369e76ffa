"""Channel tasks: thin, load by id inside the client's schema, call a service."""

from __future__ import annotations

from celery import shared_task

from channels_app import services
from wafaa.tasks import ClientTask, WafaaTask


@shared_task(
    base=ClientTask,
    bind=True,
    name="channels_app.tasks.message_send_task",
    max_retries=None,
    acks_late=True,
)
def message_send_task(self, message_id):
    from django.conf import settings

    try:
        return services.message_send(message_id=message_id)
    except services.SendRetryableError as exc:
        if self.request.retries >= settings.GRAPH_SEND_MAX_RETRIES:
            from conversations.models import Message

            message = Message.objects.get(pk=message_id)
            return services.message_send_fail(message, "retries_exhausted", str(exc))
        # Exponential backoff with jitter, or Meta's Retry-After / our pacing when given.
        import random

        countdown = min(
            settings.CELERY_MAX_COUNTDOWN,
            exc.countdown or 2**self.request.retries + random.uniform(0, 1),
        )
        raise self.retry(exc=exc, countdown=countdown) from None


@shared_task(base=ClientTask, name="channels_app.tasks.message_mark_read_task")
def message_mark_read_task(message_id):
    services.message_mark_read(message_id=message_id)


@shared_task(
    base=ClientTask,
    name="channels_app.tasks.media_fetch_task",
    autoretry_for=(
        services.graph.GraphRateLimitError,
        services.graph.GraphServerError,
        services.graph.GraphTimeoutError,
        services.graph.GraphConnectionError,
    ),
    retry_backoff=True,
    retry_backoff_max=45,  # under the broker's visibility timeout (CELERY_MAX_COUNTDOWN)
    retry_jitter=True,
    max_retries=5,
)
def media_fetch_task(message_id):
    return len(services.media_fetch(message_id=message_id))


@shared_task(base=WafaaTask, name="channels_app.tasks.channel_accounts_check_silent_task")
def channel_accounts_check_silent_task():
    return services.channel_accounts_flag_silent()
