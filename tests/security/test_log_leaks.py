"""Finding 7 — customer message text in the logs.

A real Celery worker logging at INFO (the suite's worker, its output in a file) handles a
conversation in handoff mode whose customer writes a marker text (an IBAN, as in the report):
the client's callback endpoint receives the text, and the worker's log never contains it.
Celery's own argument and result logging is masked too, whoever sent the task.
"""

from __future__ import annotations

import time
import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from tenants.models import Client
from tests.fakes.callback_receiver import CallbackReceiver


def _marker() -> str:
    # Upper case and digits, as an IBAN: nothing the log masking could keep as a "code".
    return f"IBAN DE89 3704 0044 0532 0130 00 LEAK{uuid.uuid4().hex[:12].upper()}"


def _log_after_tasks_finished(worker, webhook_ids: list[str], timeout: float = 10.0) -> str:
    """The worker's log once the "succeeded" lines of the tasks that sent these callbacks are
    written (their masked arguments keep the webhook id: it is an id, not a text)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = worker.output()
        lines = [line for line in output.splitlines() if "succeeded" in line]
        if all(any(webhook_id in line for line in lines) for webhook_id in webhook_ids):
            return output
        time.sleep(0.1)
    raise AssertionError(f"the tasks of {webhook_ids} never logged their success")


@pytest.fixture
def receiver():
    r = CallbackReceiver().start()
    yield r
    r.stop()


def test_a_customer_text_in_handoff_reaches_the_callback_but_never_the_worker_log(
    client, shop, fake_graph, receiver, celery_worker_process
):
    Client.objects.filter(pk=shop.client.pk).update(callback_url=receiver.url)
    secret = Client.objects.get(pk=shop.client.pk).callback_secret
    asking, writing = _marker(), _marker()

    shop.send(client, f"I need a human please, my account is {asking}")
    fake_graph.wait_for(1, timeout=15)  # the handoff acknowledgement
    shop.send(client, f"Please refund to {writing}")
    requests_ = receiver.wait_for(2, timeout=20)

    events = {}
    for request in requests_:
        body = Webhook(secret).verify(request.body, request.headers)
        events[body["event"]] = body["data"]
    assert asking in events["handoff"]["last_customer_message"]
    assert writing in events["customer_message"]["text"]

    webhook_ids = [request.headers["webhook-id"] for request in requests_]
    log = _log_after_tasks_finished(celery_worker_process, webhook_ids)
    for marker in (asking, writing):
        assert marker not in log
        assert marker.split()[-1] not in log  # not even the unique tail of it


def test_celery_argument_and_result_logging_is_masked_for_a_task_given_a_text(
    live, celery_worker_process, redis_client
):
    from config.celery import app
    from wafaa.diagnostics import schema_probe_task

    # A text where an id belongs, sent through our base task and around it (send_task):
    # Celery's "Task received" / "succeeded" lines show neither.
    ours, theirs = _marker(), _marker()
    ours_key, theirs_key = f"test:probe:{ours}", f"test:probe:{theirs}"
    sent = [
        schema_probe_task.delay(ours_key).id,
        app.send_task("wafaa.schema_probe_task", args=[theirs_key]).id,
    ]

    deadline = time.monotonic() + 15
    while not all(f"[{task_id}] succeeded" in celery_worker_process.output() for task_id in sent):
        assert time.monotonic() < deadline, "the probe tasks never logged their success"
        time.sleep(0.1)
    assert redis_client.exists(ours_key) and redis_client.exists(theirs_key)  # both ran
    log = celery_worker_process.output()
    for marker in (ours, theirs):
        assert marker not in log and marker.split()[-1] not in log
    redis_client.delete(ours_key, theirs_key)
