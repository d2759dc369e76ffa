"""A message's trace id: from the webhook request, through the reply task and the send task."""

from __future__ import annotations

import io
import json
import logging
import uuid

from tests.factories import wa_text_payload


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def test_webhook_trace_id_follows_the_message_into_every_log_line(
    client, shop, fake_graph, celery_worker_process
):
    from wafaa.logging import ContextFilter, JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # the suite runs at WARNING; request lines are INFO
    root.addHandler(handler)
    trace_id = f"trace-{uuid.uuid4().hex}"
    try:
        body = wa_text_payload(
            message_id=f"wamid.{uuid.uuid4().hex}",
            text="How much is a cappuccino?",
            phone_id=shop.account.external_id,
            wa_id="15557654322",
        )
        from channels_app.providers import sign_body

        response = client.post(
            shop.url,
            data=body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=sign_body(body, shop.account.app_secret),
            HTTP_X_TRACE_ID=trace_id,
        )
        assert response["X-Trace-ID"] == trace_id
        fake_graph.wait_for(1, timeout=20)
        shop.wait_until(lambda: shop.messages(trace_id=trace_id, direction="out", status="sent"))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    web_lines = [
        line for line in _json_lines(stream.getvalue()) if line.get("trace_id") == trace_id
    ]
    assert any(line["logger"] == "wafaa.http" for line in web_lines)
    worker_lines = [
        line
        for line in _json_lines(celery_worker_process.output())
        if line.get("trace_id") == trace_id
    ]
    tasks = {line.get("task_name") for line in worker_lines}
    assert "conversations.tasks.handle_inbound_task" in tasks
    assert "conversations.tasks.message_send_task" in tasks
    # The stored messages carry it too, for `manage.py trace`.
    [inbound] = shop.messages(trace_id=trace_id, direction="in")
    assert inbound.text == "How much is a cappuccino?"


def test_phone_numbers_are_masked_in_log_lines():
    from wafaa.logging import ContextFilter, JsonFormatter

    record = logging.LogRecord(
        "wafaa.test", logging.INFO, __file__, 1, "sending to +212 612-345678 now", None, None
    )
    record.wa_id = "212612345678"
    record.text = "my secret order"
    ContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "612345678" not in line and "612-345678" not in line
    assert "my secret order" not in line
    assert "***678" in line


def test_trace_command_prints_the_path_of_a_message(shop, client, fake_graph, capsys):
    from django.core.management import call_command

    shop.send(client, "What are your opening hours?")
    fake_graph.wait_for(1, timeout=20)
    shop.wait_until(lambda: shop.messages(direction="out", status="sent"))
    [inbound] = shop.messages(direction="in")
    call_command("trace", inbound.trace_id, "--client", shop.client.slug)
    output = capsys.readouterr().out
    assert "inbound text stored" in output
    assert "knowledge cited: FAQ" in output
    assert "sent (graph id wamid." in output
