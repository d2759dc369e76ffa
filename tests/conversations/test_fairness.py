"""Fair sharing between clients: a cap per client, a waiting line per client, 429 per client.

Real Redis, real client schemas; the 429 test runs the real task (eagerly) against the fake
OpenAI server.
"""

from __future__ import annotations

import uuid

import pytest
from celery.exceptions import Retry

from conversations import fairness, services
from conversations.models import Message
from tests.conftest import inside
from tests.conversations.helpers import add_faq_knowledge, inbound
from tests.factories import ChannelAccountFactory
from wafaa import ai_config


def _forget(redis, *clients):
    for client in clients:
        for key in redis.scan_iter(f"wafaa:replies:*:{client.schema_name}"):
            redis.delete(key)


@pytest.fixture
def lines(redis_client, tenant_a, tenant_b):
    _forget(redis_client, tenant_a, tenant_b)
    yield
    _forget(redis_client, tenant_a, tenant_b)


def test_a_client_at_its_cap_waits_in_its_own_line_released_oldest_first(lines, tenant_a):
    tenant_a.llm_concurrency = 2
    with inside(tenant_a):
        assert fairness.reply_admit(message_id=1) and fairness.reply_admit(message_id=2)
        assert fairness.reply_admit(message_id=3) is False  # full: nothing sent, in line
        assert fairness.reply_admit(message_id=4) is False
        assert fairness.reply_admit(message_id=3) is False  # sent again: keeps its place
        assert fairness.waiting_count(tenant_a.schema_name) == 2
        first = fairness.slot_acquire(message_id=1)  # the tasks start with their tickets
        second = fairness.slot_acquire(message_id=2)
        assert first and second
        assert fairness.slot_release(first) == ["3"]  # 3 takes the slot; its task is sent
        assert fairness.reply_admit(message_id=5) is False  # 4 waits before it
        third = fairness.slot_acquire(message_id=3)
        assert third and fairness.waiting_count(tenant_a.schema_name) == 2
        assert fairness.slot_release(second) == ["4"]
        assert fairness.slot_release(third) == ["5"]


def test_a_full_client_never_holds_another_client(lines, tenant_a, tenant_b):
    tenant_a.llm_concurrency = 1
    with inside(tenant_a):
        assert fairness.reply_admit(message_id=1)
        assert fairness.reply_admit(message_id=2) is False
    with inside(tenant_b):
        assert fairness.reply_admit(message_id=1)
        assert fairness.reply_admit(message_id=2)
        assert fairness.waiting_count(tenant_b.schema_name) == 0


def test_a_task_without_a_ticket_takes_a_free_slot_or_waits(lines, tenant_a):
    tenant_a.llm_concurrency = 1
    with inside(tenant_a):
        slot = fairness.slot_acquire(message_id=7)  # e.g. sent by an older release
        assert slot
        assert fairness.slot_acquire(message_id=8) is None
        assert fairness.slot_release(slot) == ["8"]


def test_the_slot_of_a_lost_task_is_freed_after_its_time(lines, tenant_a, settings):
    tenant_a.llm_concurrency = 1
    with inside(tenant_a):
        assert fairness.reply_admit(message_id=1)  # its task is lost: never released
        assert fairness.reply_admit(message_id=2) is False
        settings.CELERY_TASK_TIME_LIMIT = -1000  # as if visibility + time limit had passed
        assert fairness.slot_acquire(message_id=2)


@pytest.fixture
def online(settings, fake_llm):
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = fake_llm.url
    settings.LLM_TIMEOUT = 1.0
    settings.SAME_CUSTOMER_SPACING_MS = 0
    ai_config.reset_clients()
    yield fake_llm
    ai_config.reset_clients()


def test_a_429_for_one_client_pauses_that_client_only_for_its_retry_after(
    lines,
    tenant_a,
    tenant_b,
    online,
    fake_graph,
    eager_tasks,
    redis_client,
    django_capture_on_commit_callbacks,
):
    from conversations.tasks import handle_inbound_task

    received = {}
    for tenant in (tenant_a, tenant_b):
        with inside(tenant):
            add_faq_knowledge()
            account = ChannelAccountFactory(client=tenant, external_id=str(uuid.uuid4().int)[:15])
            received[tenant.slug] = [
                services.message_receive(
                    account=account,
                    inbound=inbound(text, wa_id=wa_id, phone_id=account.external_id),
                )[0]
                for text, wa_id in [("Do you deliver?", "15550000001"), ("Hi", "15550000002")]
            ]
    online.fail_next(429, retry_after=7, endpoint="chat")
    with inside(tenant_a), django_capture_on_commit_callbacks(execute=True):
        first, second = received[tenant_a.slug]
        # 429: this client is paused and the task retries after the Retry-After.
        with pytest.raises(Retry) as retry:
            handle_inbound_task.delay(first.pk)
        assert 7 < retry.value.when < 8.5
        assert handle_inbound_task.delay(second.pk) is None  # paused: in line, not sent
        pause_ms = redis_client.pttl(f"wafaa:replies:backoff:{tenant_a.schema_name}")
        assert fairness.waiting_count(tenant_a.schema_name) == 1
        assert not Message.objects.filter(direction="out").exists()
    assert 5_000 < pause_ms <= 7_000
    assert len(online.chat_calls) == 1
    with inside(tenant_b), django_capture_on_commit_callbacks(execute=True):
        for message in received[tenant_b.slug]:
            assert handle_inbound_task.delay(message.pk).get() == "answered"
    with inside(tenant_b):
        assert Message.objects.filter(direction="out", status="sent").count() == 2
    assert len(online.chat_calls) == 3
    assert len(fake_graph.message_sends()) == 2
