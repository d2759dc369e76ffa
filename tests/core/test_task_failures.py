"""Every task failure is counted, and a dead database connection is retried, not final."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from config.celery import app
from wafaa import metrics
from wafaa.tasks import DATABASE_MAX_RETRIES, ClientRequiredError, ClientTask, WafaaTask

_runs = []


@app.task(base=WafaaTask, bind=True, name="tests.database_gone_probe")
def database_gone_probe(self):
    _runs.append(self.request.retries)
    raise OperationalError("the connection is closed")


@app.task(base=ClientTask, name="tests.client_probe")
def client_probe():
    return "ran"


def _count(task: str, state: str) -> float:
    return metrics.TASKS.labels(task=task, state=state)._value.get()


def test_a_client_task_refused_before_it_runs_is_counted_as_failed(db, eager_tasks):
    before = _count("tests.client_probe", "failed")
    with pytest.raises(ClientRequiredError):
        client_probe.delay()
    assert _count("tests.client_probe", "failed") == before + 1


def test_a_task_on_a_dead_database_connection_is_retried_then_fails(eager_tasks):
    from celery.exceptions import Retry

    _runs.clear()
    retried = _count("tests.database_gone_probe", "retried")
    failed = _count("tests.database_gone_probe", "failed")
    with pytest.raises(Retry):  # eager: the retry is raised instead of scheduled
        database_gone_probe.delay()
    assert _count("tests.database_gone_probe", "retried") == retried + 1
    assert _count("tests.database_gone_probe", "failed") == failed
    # Still unreachable after DATABASE_MAX_RETRIES retries: a failure, counted once.
    with pytest.raises(OperationalError):
        database_gone_probe.apply(retries=DATABASE_MAX_RETRIES)
    assert _runs == [0, DATABASE_MAX_RETRIES]
    assert _count("tests.database_gone_probe", "failed") == failed + 1


def test_a_client_task_sent_from_public_is_named_at_the_sender(db, eager_tasks, caplog):
    """Before the worker refuses it, the sender logs the mistake with its own stack."""
    import contextlib
    import logging

    from django.db import connection

    assert connection.schema_name == "public"
    with (
        caplog.at_level(logging.ERROR, logger="wafaa.tasks"),
        contextlib.suppress(ClientRequiredError),  # then refused when run (eager here)
    ):
        client_probe.delay()
    [record] = [
        r for r in caplog.records if r.getMessage() == "client task sent from the public schema"
    ]
    assert record.task == "tests.client_probe"
    assert "test_a_client_task_sent_from_public_is_named_at_the_sender" in record.stack_info
