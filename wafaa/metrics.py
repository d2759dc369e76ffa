"""Wafaa's own Prometheus metrics (django-prometheus covers HTTP, database and cache).

Under gunicorn these are collected in multiprocess mode (PROMETHEUS_MULTIPROC_DIR), so
/metrics aggregates every worker; Celery workers write to the same directory when set.
Labels are bounded: no per-client label unless PROMETHEUS_PER_CLIENT_LABELS is on.
"""

from prometheus_client import Counter, Gauge, Histogram

WEBHOOK_EVENTS = Counter(
    "wafaa_webhook_events_total",
    "Webhook events by channel and result",
    [
        "channel",
        "result",
    ],  # stored (web), accepted, duplicate (drain), bad_signature, unknown_account, malformed, inactive
)
INBOX_EVENTS = Counter(
    "wafaa_inbox_events_total",
    "Inbox events drained, by result (done, retry, parked)",
    ["result"],
)
INBOX_PENDING = Gauge(
    "wafaa_inbox_pending",
    "Inbox events waiting to be drained (sampled by the sweep)",
    multiprocess_mode="max",
)
MESSAGES = Counter(
    "wafaa_messages_total",
    "Messages by channel, direction and status",
    ["channel", "direction", "status"],
)
REPLIES = Counter("wafaa_replies_total", "Reply pipeline outcomes", ["outcome"])
REPLIES_WAITING = Counter(
    "wafaa_replies_waiting_total",
    "Replies that waited in their client's line (the client was at its LLM concurrency cap)",
)
LLM_BACKOFFS = Counter(
    "wafaa_llm_backoffs_total", "Pauses of one client's replies after the LLM answered 429"
)
REPLIES_PARKED = Counter(
    "wafaa_replies_parked_total",
    "Inbound messages parked after REPLY_MAX_ATTEMPTS failed reply attempts",
    ["reason"],
)
LLM_CALLS = Counter("wafaa_llm_calls_total", "LLM calls by model and result", ["model", "result"])
LLM_LATENCY = Histogram(
    "wafaa_llm_latency_seconds",
    "LLM call latency",
    ["model"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30),
)
LLM_TOKENS = Counter("wafaa_llm_tokens_total", "LLM tokens by model and kind", ["model", "kind"])
EMBEDDING_CALLS = Counter(
    "wafaa_embedding_calls_total", "Embedding calls by backend and result", ["backend", "result"]
)
EMBEDDING_LATENCY = Histogram(
    "wafaa_embedding_latency_seconds",
    "Embedding call latency",
    ["backend"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
SEND_PAUSES = Counter(
    "wafaa_send_pauses_total",
    "Sends of a phone number paused after Meta throttled it or failed for it",
    ["channel", "reason"],
)
GRAPH_SENDS = Counter(
    "wafaa_graph_sends_total",
    "Graph API sends by channel, result and error code",
    ["channel", "result", "code"],
)
QUEUE_DEPTH = Gauge(
    "wafaa_queue_depth",
    "Messages waiting per Celery queue (sampled by beat)",
    ["queue"],
    multiprocess_mode="max",
)
REPLY_LATENCY = Histogram(
    "wafaa_reply_latency_seconds",
    "From inbound message stored to reply handed to the channel",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
TASKS = Counter("wafaa_celery_tasks_total", "Celery tasks by name and state", ["task", "state"])
TASK_DURATION = Histogram(
    "wafaa_celery_task_duration_seconds",
    "Celery task run time",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
TASKS_PARKED = Counter(
    "wafaa_celery_tasks_parked_total", "Task messages parked after too many deliveries", ["task"]
)
CHANNEL_SILENT = Gauge(
    "wafaa_channel_accounts_silent",
    "Active channel accounts with no webhook for too long",
    multiprocess_mode="max",
)
CLIENT_MESSAGES = Counter(
    "wafaa_client_messages_total",
    "Messages per client and direction (only with PROMETHEUS_PER_CLIENT_LABELS: unbounded labels)",
    ["client", "direction"],
)


AD_REFERRALS = Counter(
    "wafaa_ad_referrals_total",
    "Inbound messages that came from an ad or a product, by channel and source type",
    ["channel", "source_type"],
)
CLIENT_AD_REFERRALS = Counter(
    "wafaa_client_ad_referrals_total",
    "Ad referrals per client and ad (only with PROMETHEUS_PER_CLIENT_LABELS: unbounded labels)",
    ["client", "source_id"],
)


def count_ad_referral(client_slug: str, channel: str, referral: dict) -> None:
    """One message from an ad: by source type always, per client and ad when opted in."""
    from django.conf import settings

    AD_REFERRALS.labels(channel=channel, source_type=referral.get("source_type") or "unknown").inc()
    if settings.PROMETHEUS_PER_CLIENT_LABELS and referral.get("source_id"):
        CLIENT_AD_REFERRALS.labels(client=client_slug, source_id=referral["source_id"]).inc()


def count_client_message(client_slug: str, direction: str) -> None:
    """Per-client message counts, when the operator opted in to per-client labels."""
    from django.conf import settings

    if settings.PROMETHEUS_PER_CLIENT_LABELS:
        CLIENT_MESSAGES.labels(client=client_slug, direction=direction).inc()


# --- resources (wafaa/resources.py samples them; process CPU/memory are read at scrape) ----
HTTP_IN_FLIGHT = Gauge(
    "wafaa_http_requests_in_flight",
    "HTTP requests being handled right now, over every web process",
    multiprocess_mode="livesum",
)
REDIS_MEMORY_USED = Gauge(
    "wafaa_redis_used_memory_bytes", "Redis used_memory (sampled by beat)", multiprocess_mode="max"
)
REDIS_MEMORY_MAX = Gauge(
    "wafaa_redis_maxmemory_bytes",
    "Redis maxmemory; 0 means no limit (sampled by beat)",
    multiprocess_mode="max",
)
PG_CONNECTIONS = Gauge(
    "wafaa_postgres_connections",
    "PostgreSQL client connections in use, every process and database (sampled by beat)",
    multiprocess_mode="max",
)
PG_MAX_CONNECTIONS = Gauge(
    "wafaa_postgres_max_connections",
    "PostgreSQL max_connections (sampled by beat)",
    multiprocess_mode="max",
)


# --- what customers feel (conversations.monitoring samples the gauges every minute) ---------
SENDS_FAILED = Counter(
    "wafaa_sends_failed_total",
    "Outbound messages that finally failed (after retries), by channel and reason",
    ["channel", "reason"],
)
DELIVERY_STATUSES = Counter(
    "wafaa_delivery_statuses_total",
    "Delivery statuses from Meta applied to our messages, by channel and status",
    ["channel", "status"],
)
INBOUND_OLDEST_UNANSWERED = Gauge(
    "wafaa_inbound_oldest_unanswered_seconds",
    "Age of the oldest inbound message neither answered nor handed off, over every client",
    multiprocess_mode="max",
)
CONVERSATIONS_WINDOW_CLOSING = Gauge(
    "wafaa_conversations_window_closing",
    "Unanswered conversations whose 24-hour window closes within the hour, over every client",
    multiprocess_mode="max",
)
HANDOFFS_WAITING = Gauge(
    "wafaa_handoffs_waiting_too_long",
    "Handoffs with no reply from a person for longer than HANDOFF_WAITING_ALERT_MINUTES",
    multiprocess_mode="max",
)
DOCUMENTS_FAILED = Counter(
    "wafaa_documents_failed_total", "Documents whose ingestion failed, by reason", ["reason"]
)

INBOX_OLDEST_PENDING = Gauge(
    "wafaa_inbox_oldest_pending_seconds",
    "Age of the oldest webhook event waiting in the inbox (sampled by the inbox sweep)",
    multiprocess_mode="max",
)
