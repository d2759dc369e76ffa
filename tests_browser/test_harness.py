"""The harness itself: the browser reaches the real server, and the server's workers take a
signed webhook in and send the reply out to the fake Graph API."""

from __future__ import annotations

from tests_browser.harness import wait_until


def test_the_browser_reaches_the_running_server(page, harness):
    response = page.goto("/health")
    assert response.status == 200
    assert '"status"' in page.content()


def test_a_signed_webhook_is_answered_through_the_fake_graph_api(harness):
    tenant = harness.tenants["a"]
    customer = harness.customer(99)
    before = len(harness.graph.message_sends())
    harness.send_text(tenant, wa_id=customer, text="Hello, can I talk to a person?")
    sends = harness.graph.wait_for(before + 1, timeout=30)
    # The bot's acknowledgement went to this customer, and a person has the conversation now.
    assert any(r.json.get("to") == customer for r in sends[before:])
    conversation = harness.conversation_of(tenant, customer)
    wait_until(
        lambda: harness.conversation(tenant, conversation.pk).mode == "handoff", 10, "handoff"
    )
