"""A reply worker killed (SIGKILL) mid-burst: every message is still answered exactly once.

The `replies` worker of the Procfile (threads, pooled database connections) is killed while
it has replies in flight (the fake LLM thinks for 1.5 s), then started again. Late acks give
the killed worker's tasks back after the visibility timeout (short here), the conversation
locks and fairness slots of the dead tasks expire with the task time limit, beat's sweeper
(run here every 10 s, as beat does) sends again what was in no queue, and the idempotent
pipeline answers each message once. The session's own workers may take part too.
"""

from __future__ import annotations

import signal
import time
import uuid

from conversations.tasks import inbound_sweep_task
from tests.conftest import WorkerProcess, inside
from tests.factories import post_webhook, wa_text_payload


def test_a_killed_reply_worker_loses_and_duplicates_nothing(
    worker_env, client, shop, fake_graph, fake_llm, tmp_path, redis_client
):
    env = {
        **worker_env,
        "DB_POOL_MAX_SIZE": "4",
        "CELERY_VISIBILITY_TIMEOUT": "10",
        "CELERY_TASK_TIME_LIMIT": "8",
        "CELERY_TASK_SOFT_TIME_LIMIT": "6",
    }

    def start(name):
        worker = WorkerProcess(
            env,
            f"{name}-{uuid.uuid4().hex[:6]}",
            tmp_path / f"{name}.log",
            pool="threads",
            concurrency=20,
            queues="replies",
        )
        return worker.start().wait_ready(redis_client)

    victim = start("victim")
    fake_llm.latency = 1.5
    customers = [f"1666{n:07d}" for n in range(30)]
    for n, wa_id in enumerate(customers):
        body = wa_text_payload(
            message_id=f"wamid.KILL{uuid.uuid4().hex}{n}",
            text="Do you deliver?",
            phone_id=shop.account.external_id,
            wa_id=wa_id,
        )
        assert post_webhook(client, shop.url, body).status_code == 200
    shop.wait_until(lambda: "handle_inbound_task" in victim.output(), timeout=20)
    time.sleep(1.0)  # replies in flight on the victim (the LLM takes 1.5 s)
    victim.stop(sig=signal.SIGKILL)
    lines = [line for line in victim.output().splitlines() if "handle_inbound_task[" in line]
    started = sum("received" in line for line in lines)
    finished = sum("succeeded" in line for line in lines)
    successor = start("successor")
    try:
        # Beat's sweeper, as it runs every 10 s: a message whose task died with the victim
        # after it was given its client's slot (it was in no queue and no line) is sent again.
        deadline = time.monotonic() + 120
        while len(fake_graph.message_sends()) < len(customers) and time.monotonic() < deadline:
            with inside(shop.client):
                inbound_sweep_task.delay()
            time.sleep(10)
        fake_graph.wait_for(len(customers), timeout=5)
        time.sleep(2.0)  # a duplicate would show up now
    finally:
        successor.stop()
    sends = sorted(r.json["to"] for r in fake_graph.message_sends())
    assert sends == customers  # each exactly once
    assert len(shop.messages(direction="in", status="answered")) == len(customers)
    assert started > finished  # the kill did interrupt replies
