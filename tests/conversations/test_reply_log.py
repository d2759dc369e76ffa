"""The per-message log line: what an operator filters and sums on, never the texts."""

from __future__ import annotations

import logging

from conversations import pipeline
from tests.conversations.test_pipeline import account, online, receive  # noqa: F401 - fixtures


def test_the_reply_line_carries_channel_latency_model_and_tokens(
    account,  # noqa: F811
    online,  # noqa: F811
    caplog,
    django_capture_on_commit_callbacks,
):
    online.reply_with("A cappuccino costs 12 SAR.")
    message = receive(account, "How much is a cappuccino?")
    with (
        caplog.at_level(logging.INFO, logger="conversations.pipeline"),
        django_capture_on_commit_callbacks(execute=False),
    ):
        pipeline.reply_for_inbound(message_id=message.pk, send=False)
    [record] = [r for r in caplog.records if r.getMessage() == "reply queued"]
    assert record.channel == "whatsapp"
    assert record.latency_ms >= 0
    assert record.model and record.prompt_tokens > 0 and record.completion_tokens > 0
    assert "cappuccino" not in str(record.__dict__).lower()
