"""/metrics: every process's metrics in one scrape, with each process's CPU and memory.

Used by the web's /metrics view and by a Celery worker's own metrics port (config.celery).
"""

from __future__ import annotations

import os

import prometheus_client
from django.http import HttpResponse
from prometheus_client import multiprocess

from wafaa.resources import ProcessesCollector, WorkerHeartbeatCollector

# One process (no PROMETHEUS_MULTIPROC_DIR): the default registry, which has prometheus_client's
# own process_* metrics, also gets ours, so alerts read the same names in every mode.
prometheus_client.REGISTRY.register(ProcessesCollector())
prometheus_client.REGISTRY.register(WorkerHeartbeatCollector())


def scrape_registry() -> prometheus_client.CollectorRegistry:
    """The registry to expose: in multiprocess mode, the files of every process sharing the
    directory (prometheus_client's MultiProcessCollector) plus their /proc readings."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return prometheus_client.REGISTRY
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(ProcessesCollector())
    registry.register(WorkerHeartbeatCollector())
    return registry


def metrics_view(request):
    return HttpResponse(
        prometheus_client.generate_latest(scrape_registry()),
        content_type=prometheus_client.CONTENT_TYPE_LATEST,
    )
