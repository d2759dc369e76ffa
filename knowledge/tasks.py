"""Knowledge tasks (queue `ingest`): thin, load by id inside the client's schema, call a service.

Retries. A transient embedding failure (rate limit, timeout, 5xx) is retried with exponential
backoff and jitter for a long time, so documents uploaded while the embedding service is down
wait (status `pending`, with a note) and finish when it returns. The countdown is capped
below the broker's visibility timeout: with Redis, a message waiting longer than that is
handed out a second time. Ingestion is idempotent (see knowledge.services), so a duplicate
delivery only costs a look at the document.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from knowledge import services
from wafaa.ai.embeddings import EmbeddingTransientError
from wafaa.backoff import backoff_delay
from wafaa.tasks import ClientTask, lease_kept

logger = logging.getLogger(__name__)

# With the default 60 s visibility timeout (48 s cap) this is 20-30 minutes of retries;
# with a longer visibility timeout the backoff grows up to 10 minutes and so does the window.
INGEST_MAX_RETRIES = 40
# Ingestion of a large document takes minutes, unlike the reply-path tasks' 40 s default.
INGEST_SOFT_TIME_LIMIT = 15 * 60
INGEST_TIME_LIMIT = INGEST_SOFT_TIME_LIMIT + 60


def _max_countdown() -> float:
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    return max(5.0, min(600.0, 0.8 * visibility))


def retry_countdown(retries: int) -> float:
    """5 s, 10 s, 20 s, ... capped, times a random factor in [0.5, 1] (spreads a herd)."""
    return backoff_delay(retries, base=5.0, cap=_max_countdown())


@shared_task(
    base=ClientTask,
    bind=True,
    name="knowledge.tasks.document_ingest_task",
    max_retries=INGEST_MAX_RETRIES,
    soft_time_limit=INGEST_SOFT_TIME_LIMIT,
    time_limit=INGEST_TIME_LIMIT,
)
def document_ingest_task(self, document_id):
    retries = self.request.retries or 0
    try:
        with lease_kept(self):  # ingestion may outlast the broker's visibility timeout
            return services.document_ingest_by_id(
                document_id=document_id, final_attempt=retries >= INGEST_MAX_RETRIES
            )
    except EmbeddingTransientError as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(retries)) from None
    except services.DocumentBusyError:
        # A duplicate delivery while another run works on the document. Look again later
        # (a fresh message, so this wait does not use up the retries meant for outages):
        # by then the run has finished (nothing to do) or died (its claim is taken over).
        document_ingest_task.apply_async(
            (document_id,), countdown=backoff_delay(0, base=min(_max_countdown(), 30.0))
        )
        return "busy"


@shared_task(base=ClientTask, name="knowledge.tasks.documents_ingest_sweep_task")
def documents_ingest_sweep_task():
    """Beat, per client (via conversations.tasks.fan_out_to_clients_task): re-enqueue stuck
    ingestions."""
    return services.documents_ingest_sweep()
