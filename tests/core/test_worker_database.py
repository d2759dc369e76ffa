"""A worker whose database connections die (PostgreSQL restarted, a proxy cut them) recovers
by itself, and says so in its heartbeat when it cannot reach the database."""

from __future__ import annotations

import time

import redis as redis_lib
from django.db import connection

from wafaa import heartbeat


def _kill_other_connections() -> int:
    # What a PostgreSQL restart does to every connection the worker holds (ours survives).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        return cursor.fetchone()[0]


def test_the_worker_answers_after_its_database_connections_were_killed(
    client, shop, fake_graph, celery_worker_process
):
    # The session's workers log every test's tasks: this test reads only its own lines.
    workers = (celery_worker_process.replies, celery_worker_process.rest)
    log_starts = [len(worker.output()) for worker in workers]
    shop.send(client, "What time do you open?")
    fake_graph.wait_for(1, timeout=15)
    # Twice: the second time the pool processes hold connections opened after the first kill.
    for sent, text in enumerate(["Do you deliver?", "How much is a cappuccino?"], start=2):
        assert _kill_other_connections() >= 1
        shop.send(client, text)
        fake_graph.wait_for(sent, timeout=30)
    time.sleep(1.5)  # a duplicate would show up now
    assert len(fake_graph.sent_texts()) == 3
    assert {m.status for m in shop.messages(direction="in")} == {"answered"}
    own_lines = "".join(w.output()[start:] for w, start in zip(workers, log_starts, strict=True))
    assert "handle_inbound_task" in own_lines  # the window really holds this test's tasks
    assert "ClientRequiredError" not in own_lines


def test_a_live_worker_reports_its_own_database_and_broker_checks(celery_worker_process):
    from wafaa.redis import get_redis

    deadline = time.monotonic() + 10
    mine = {}
    while time.monotonic() < deadline and not mine:
        checks = heartbeat.live_worker_checks(get_redis())
        mine = {k: v for k, v in checks.items() if k.startswith(celery_worker_process.name)}
        time.sleep(0.2)
    [checks] = mine.values()
    assert checks == {"database": "ok", "broker": "ok"}


def test_health_fails_when_live_workers_cannot_reach_the_database(settings):
    # A Redis database of its own: the other tests' live workers must not answer for these.
    url = settings.REDIS_URL.rsplit("/", 1)[0] + "/14"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    try:
        assert heartbeat.worker_status(client).startswith("no live worker")
        heartbeat.beat(client, "w1@host", {"database": "failed: OperationalError", "broker": "ok"})
        assert heartbeat.worker_status(client) == "live workers cannot reach: database"
        heartbeat.beat(client, "w2@host", {"database": "ok", "broker": "ok"})
        assert heartbeat.worker_status(client) == "ok"
        heartbeat.forget(client, "w2@host")
        assert heartbeat.worker_status(client) == "live workers cannot reach: database"
    finally:
        client.flushdb()
        client.close()


def test_own_checks_name_the_failure_without_host_or_port():
    checks = heartbeat.own_checks(
        database_dsn={"host": "127.0.0.1", "port": 1, "dbname": "x", "user": "x"},
        broker_url="redis://127.0.0.1:1/0",
        timeout=0.5,
    )
    assert checks == {"database": "failed: OperationalError", "broker": "failed: ConnectionError"}
