"""A web process publishing tasks while the broker is down answers quickly."""

from __future__ import annotations

import socket
import time

import pytest

from wafaa import tasks


@pytest.fixture
def dead_broker(settings):
    from config.celery import app

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    old = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{port}/0"
    _new_pool(app)
    tasks._broker_down_until[0] = 0.0
    yield
    app.conf.broker_url = old
    _new_pool(app)
    tasks._broker_down_until[0] = 0.0


def _new_pool(app):
    # The producer pool holds connections to the old URL; the next publish takes the pool of
    # the current one (kombu keeps one per URL, left open for the URL's return).
    app._pool = None
    app.amqp._producer_pool = None


def test_a_publish_from_the_web_fails_once_then_not_at_all_for_a_while(dead_broker):
    # (How long a webhook takes while Redis is down is measured by `make chaos`.)
    from wafaa.diagnostics import schema_probe_task

    with pytest.raises(Exception) as first:
        schema_probe_task.delay("probe")
    assert not isinstance(first.value, tasks.BrokerUnavailableError)
    with pytest.raises(tasks.BrokerUnavailableError):
        schema_probe_task.delay("probe")  # not even tried: the broker failed a moment ago
    tasks._broker_down_until[0] = time.monotonic() - 1  # a few seconds later
    with pytest.raises(Exception) as again:
        schema_probe_task.delay("probe")
    assert not isinstance(again.value, tasks.BrokerUnavailableError)
