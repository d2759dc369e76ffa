"""The reply worker overlaps the waiting: many conversations are in flight in one process.

Through the real `replies` worker (threads, pooled database connections: the Procfile's
layout, see tests/conftest.py). Concurrency is proved by counting, not timing: the fake
OpenAI server records how many chat completions it was answering at the same moment.
"""

from __future__ import annotations

import uuid

from tests.factories import post_webhook, wa_text_payload


def _send_from(client, shop, n: int, text: str) -> None:
    body = wa_text_payload(
        message_id=f"wamid.{uuid.uuid4().hex}",
        text=text,
        phone_id=shop.account.external_id,
        wa_id=f"1555{n:07d}",
        name=f"Customer {n}",
    )
    assert post_webhook(client, shop.url, body).status_code == 200


def test_replies_of_many_conversations_wait_on_the_llm_together(client, shop, fake_graph, fake_llm):
    fake_llm.latency = 1.5  # under the workers' LLM_TIMEOUT (2 s)
    customers = 10
    for n in range(customers):
        _send_from(client, shop, n, "What time do you open?")
    fake_graph.wait_for(customers, timeout=30)
    # More replies waited on the LLM at once than the worker has database connections
    # (DB_POOL_MAX_SIZE=4): none is held while the model thinks.
    assert fake_llm.max_in_flight > 4
    sends = fake_graph.message_sends()
    assert sorted(r.json["to"] for r in sends) == [f"1555{n:07d}" for n in range(customers)]
    assert {r.text for r in sends} == {"We are open every day from 8am to 10pm."}
    answered = shop.messages(direction="in", status="answered")
    assert len(answered) == customers


def test_llm_errors_and_timeouts_under_concurrency_are_retried_per_conversation(
    client, shop, fake_graph, fake_llm
):
    # Two 5xx and two timeouts (the workers' LLM_TIMEOUT is 2 s) among six conversations.
    fake_llm.fail_next(503, times=2, endpoint="chat")
    fake_llm.hang_next(3.0, times=2, endpoint="chat")
    customers = 6
    for n in range(customers):
        _send_from(client, shop, 100 + n, "Do you deliver?")
    fake_graph.wait_for(customers, timeout=60)
    sends = fake_graph.message_sends()
    assert sorted(r.json["to"] for r in sends) == [f"1555{100 + n:07d}" for n in range(customers)]
    assert {r.text for r in sends} == {
        "Yes, we deliver within 5 km for 10 MAD; free above 100 MAD."
    }
    # One owner of retries (the task): each failure cost exactly one more call, no SDK retry.
    # A request can take a hang and a failure at once, so 2 to 4 failed calls in all.
    assert customers + 2 <= len(fake_llm.chat_calls) <= customers + 4


def test_a_client_at_its_cap_is_answered_in_turn_never_more_at_once(
    client, shop, fake_graph, fake_llm
):
    shop.client.llm_concurrency = 2
    shop.client.save(update_fields=["llm_concurrency"])
    fake_llm.latency = 0.5
    customers = 6
    for n in range(customers):
        _send_from(client, shop, 200 + n, "How much is a cappuccino?")
    fake_graph.wait_for(customers, timeout=60)
    # The rest waited in the client's line and were sent as its replies finished.
    assert 1 <= fake_llm.max_in_flight <= 2
    sends = fake_graph.message_sends()
    assert sorted(r.json["to"] for r in sends) == [f"1555{200 + n:07d}" for n in range(customers)]
    assert len(shop.messages(direction="in", status="answered")) == customers
