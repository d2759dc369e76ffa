"""Slow queries are logged; task metrics are counted by name and state."""

from __future__ import annotations

import logging

from django.db import connection


def test_a_slow_query_is_logged_with_its_duration_and_no_parameters(db, settings, caplog):
    settings.SLOW_QUERY_MS = 50
    with caplog.at_level(logging.WARNING, logger="wafaa.db.slow"), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.08), %s", ["secret customer text"])
    [record] = [r for r in caplog.records if r.name == "wafaa.db.slow"]
    assert record.duration_ms >= 50
    assert (
        "pg_sleep" in record.sql and "secret customer text" not in record.getMessage() + record.sql
    )


def test_a_fast_query_is_not_logged(db, settings, caplog):
    settings.SLOW_QUERY_MS = 1000
    with caplog.at_level(logging.WARNING, logger="wafaa.db.slow"), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert not [r for r in caplog.records if r.name == "wafaa.db.slow"]


def test_task_runs_are_counted_by_name_and_state(db, eager_tasks, redis_client):
    from wafaa import metrics
    from wafaa.diagnostics import noop_task

    def count(state):
        return metrics.TASKS.labels(task="wafaa.noop_task", state=state)._value.get()

    before = count("succeeded")
    noop_task.delay("test:noop:counter")
    assert count("succeeded") == before + 1


def test_queue_depth_is_sampled_per_queue(db, eager_tasks, redis_client, settings):
    from wafaa import metrics
    from wafaa.diagnostics import queue_depth_sample_task

    # A queue no worker consumes, so nothing takes the items while we count them.
    settings.CELERY_WORKER_QUEUES = ["test-depth"]
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    redis_client.delete(prefix + "test-depth")
    redis_client.rpush(prefix + "test-depth", "a", "b", "c")
    try:
        depths = queue_depth_sample_task.delay().get()
    finally:
        redis_client.delete(prefix + "test-depth")
    assert depths == {"test-depth": 3}
    assert metrics.QUEUE_DEPTH.labels(queue="test-depth")._value.get() == 3


def test_a_long_task_keeps_its_broker_lease_while_it_runs(redis_client, settings):
    import time
    import types

    from wafaa.tasks import lease_kept

    key = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "") + "unacked_index"
    tag = "test-delivery-tag-lease"
    # Delivered a while ago, but inside the visibility timeout: the session's live workers scan
    # for older deliveries every few seconds and would hand out (remove) an ancient one.
    redis_client.zadd(key, {tag: time.time() - 30})
    task = types.SimpleNamespace(
        request=types.SimpleNamespace(is_eager=False, delivery_info={"delivery_tag": tag})
    )
    try:
        with lease_kept(task, every=0.1):
            time.sleep(0.35)
        assert redis_client.zscore(key, tag) > time.time() - 5  # renewed while running
        redis_client.zrem(key, tag)
        with lease_kept(task, every=0.1):
            time.sleep(0.25)
        assert redis_client.zscore(key, tag) is None  # an acked delivery is not brought back
    finally:
        redis_client.zrem(key, tag)


def test_per_client_labels_only_when_the_operator_opts_in(in_tenant_a, settings):
    from conversations import services
    from tests.conversations.helpers import inbound
    from tests.factories import ChannelAccountFactory
    from wafaa import metrics

    def count():
        return metrics.CLIENT_MESSAGES.labels(client=in_tenant_a.slug, direction="in")._value.get()

    account = ChannelAccountFactory(client=in_tenant_a)
    settings.PROMETHEUS_PER_CLIENT_LABELS = False
    before = count()
    services.message_receive(account=account, inbound=inbound("hi", wa_id="15550000201"))
    assert count() == before
    settings.PROMETHEUS_PER_CLIENT_LABELS = True
    services.message_receive(account=account, inbound=inbound("hi", wa_id="15550000202"))
    assert count() == before + 1


def test_the_request_log_line_names_the_client_the_request_worked_for(tenant_a, caplog):
    """The request line is written after the connection went back to public; it must still
    say which client's data the request touched, so logs can be filtered by client."""
    from tests.tenants.factories import api_key_for, api_with_key
    from wafaa.logging import ContextFilter

    _, raw_key = api_key_for(tenant_a)
    with caplog.at_level(logging.INFO, logger="wafaa.http"):
        response = api_with_key(raw_key).get(f"/api/v1/clients/{tenant_a.pk}/conversations")
    assert response.status_code == 200
    [record] = [r for r in caplog.records if r.name == "wafaa.http" and r.msg == "request"]
    ContextFilter().filter(record)
    assert record.client_schema == tenant_a.schema_name


def test_an_anonymous_request_log_line_stays_in_public(db, caplog, api):
    from wafaa.logging import ContextFilter

    with caplog.at_level(logging.INFO, logger="wafaa.http"):
        api.get("/api/v1/auth/me")
    [record] = [r for r in caplog.records if r.name == "wafaa.http" and r.msg == "request"]
    ContextFilter().filter(record)
    assert record.client_schema == "public"
