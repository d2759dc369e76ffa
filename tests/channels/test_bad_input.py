"""Bad bytes in what customers send: one message never blocks its siblings, and duplicates
leave no customer data in PostgreSQL's log."""

from __future__ import annotations

import json

import pytest

from conversations.models import Contact, Message
from tests.conftest import inside
from tests.factories import ChannelAccountFactory, post_webhook, wa_text_payload

WA_URL = "/webhook/whatsapp/test-a/"


@pytest.fixture
def wa_account(tenant_a):
    return ChannelAccountFactory(client=tenant_a)


def _two_messages(first_text: str, second_text: str) -> bytes:
    body = json.loads(wa_text_payload(message_id="wamid.NUL1", text=first_text))
    value = body["entry"][0]["changes"][0]["value"]
    second = json.loads(json.dumps(value["messages"][0]))
    second.update(id="wamid.NUL2", text={"body": second_text})
    value["messages"].append(second)
    return json.dumps(body).encode()


def test_a_nul_byte_in_one_message_stores_both_messages_without_it(client, wa_account, tenant_a):
    body = _two_messages("shop\u0000 hours?\ud800", "Do you deliver?")
    assert b"\\u0000" in body
    response = post_webhook(client, WA_URL, body)
    assert response.status_code == 200, response.content
    with inside(tenant_a):
        texts = dict(Message.objects.values_list("external_id", "text"))
        raws = list(Message.objects.values_list("raw", flat=True))
    assert texts == {"wamid.NUL1": "shop hours?", "wamid.NUL2": "Do you deliver?"}
    assert all("\u0000" not in json.dumps(raw) for raw in raws)


def test_a_nul_byte_in_the_customers_name_is_removed(client, wa_account, tenant_a):
    body = wa_text_payload(message_id="wamid.NAME1", text="hi", name="Sa\u0000ra")
    assert post_webhook(client, WA_URL, body).status_code == 200
    with inside(tenant_a):
        assert Contact.objects.get().name == "Sara"


def test_a_duplicate_webhook_makes_no_statement_fail_in_the_database(client, wa_account, tenant_a):
    """PostgreSQL logs every failing statement with its parameters (the customer's number,
    name and text): duplicates must be skipped by ON CONFLICT, never by catching an error."""
    from django.db import connection

    failed: list[str] = []

    def watch(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except Exception as exc:
            failed.append(f"{type(exc).__name__}: {sql[:80]}")
            raise

    body = wa_text_payload(
        message_id="wamid.DUPLOG1", text="my secret order 4242", name="Leaky Name"
    )
    assert post_webhook(client, WA_URL, body).status_code == 200
    with connection.execute_wrapper(watch):
        for _ in range(3):
            assert post_webhook(client, WA_URL, body).status_code == 200
        with inside(tenant_a):
            assert Message.objects.filter(external_id="wamid.DUPLOG1").count() == 1
            # Two requests racing both reach the INSERT: the second inserts nothing, quietly.
            from wafaa.db import insert_or_nothing

            contact = Contact.objects.get()
            twin = Contact(
                channel=contact.channel, external_id=contact.external_id, name="Leaky Name"
            )
            assert insert_or_nothing(twin, conflict_fields=["channel", "external_id"]) is False
            assert twin.pk is None and Contact.objects.count() == 1
    assert failed == []


def test_a_refused_handshake_never_logs_the_verify_token(client, wa_account):
    import io
    import logging

    from wafaa.logging import ContextFilter, JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = client.get(
            WA_URL,
            {"hub.mode": "subscribe", "hub.verify_token": "guess-Zq81x", "hub.challenge": "7"},
        )
    finally:
        logger.removeHandler(handler)
    assert response.status_code in (401, 403)
    written = stream.getvalue()
    assert "/webhook/whatsapp/test-a/" in written  # the refusal is logged...
    assert "guess-Zq81x" not in written and "verify_token" not in written  # ...not the token
