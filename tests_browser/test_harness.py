"""The harness itself: the browser reaches the real server, and the server's workers take a
signed webhook in and send the reply out to the fake Graph API."""

from __future__ import annotations


def test_the_browser_reaches_the_running_server(page, harness):
    response = page.goto("/health")
    assert response.status == 200
    assert '"status"' in page.content()


def test_a_signed_webhook_is_answered_through_the_fake_graph_api(harness):
    tenant = harness.tenants["a"]
    customer = harness.customer(99)
    before = len(harness.graph.message_sends())
    harness.send_text(tenant, wa_id=customer, text="Hello, are you open today?")
    sends = harness.graph.wait_for(before + 1, timeout=30)
    assert any(r.json.get("to") == customer for r in sends[before:])
    conversation = harness.conversation_of(tenant, customer)
    assert conversation.mode == "bot"
