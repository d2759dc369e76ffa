"""GraphClient against the fake Graph API server: what goes on the wire, how errors classify.

Plain pytest, no Django: the client takes its base URL, version and token as arguments.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from channels_app.graph import (
    GraphAuthError,
    GraphClient,
    GraphClientError,
    GraphConnectionError,
    GraphError,
    GraphInvalidResponseError,
    GraphRateLimitError,
    GraphServerError,
    GraphTimeoutError,
    GraphWindowClosedError,
    MediaTooLargeError,
    split_text,
)
from tests.fakes import graph_api as graph_api_fake

# Made available here until a conftest re-exports it for every test module.
fake_graph_api = graph_api_fake.fake_graph_api

TOKEN = "EAAG-secret-test-token-0123456789"
VERSION = "v21.0"
PNID = "106540352242922"
IG_ACCOUNT = "17841400000000001"


@pytest.fixture
def client(fake_graph_api):
    # A session of its own per test: the fake's port changes every test.
    with requests.Session() as session:
        yield GraphClient(fake_graph_api.url, VERSION, TOKEN, session=session, read_timeout=2)


# --- Success ------------------------------------------------------------------------------


def test_send_whatsapp_text_returns_the_message_id_and_sends_graphs_json(client, fake_graph_api):
    message_id = client.send_whatsapp_text(PNID, "15550002222", "Hello!", reply_to="wamid.IN1")

    assert message_id.startswith("wamid.FAKE")
    (request,) = fake_graph_api.requests
    assert (request.method, request.path) == ("POST", f"/{VERSION}/{PNID}/messages")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15550002222",
        "type": "text",
        "text": {"body": "Hello!", "preview_url": False},
        "context": {"message_id": "wamid.IN1"},
    }
    assert fake_graph_api.sent_texts() == ["Hello!"]


def test_each_send_gets_its_own_id_and_no_context_without_reply_to(client, fake_graph_api):
    first = client.send_whatsapp_text(PNID, "15550002222", "one")
    second = client.send_whatsapp_text(PNID, "US.13491208655302741918", "two", preview_url=True)
    assert first != second
    assert "context" not in fake_graph_api.requests[0].json
    assert fake_graph_api.requests[1].json["text"]["preview_url"] is True
    assert [r.json["to"] for r in fake_graph_api.wait_for(2)] == [
        "15550002222",
        "US.13491208655302741918",
    ]


def test_mark_whatsapp_read_is_not_counted_as_a_send(client, fake_graph_api):
    client.mark_whatsapp_read(PNID, "wamid.IN1")
    (request,) = fake_graph_api.requests
    assert request.json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN1",
    }
    assert fake_graph_api.message_sends() == []


def test_whatsapp_typing_indicator_rides_on_the_read_receipt(client, fake_graph_api):
    client.mark_whatsapp_read(PNID, "wamid.IN2", typing=True)
    (request,) = fake_graph_api.typing_indicators()
    assert request.path == f"/{VERSION}/{PNID}/messages"
    assert request.json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN2",
        "typing_indicator": {"type": "text"},
    }
    assert fake_graph_api.message_sends() == []


def test_instagram_typing_on_is_a_sender_action(client, fake_graph_api):
    client.send_instagram_action(IG_ACCOUNT, "1234567890123456", "typing_on")
    (request,) = fake_graph_api.typing_indicators()
    assert request.path == f"/{VERSION}/{IG_ACCOUNT}/messages"
    assert request.json == {"recipient": {"id": "1234567890123456"}, "sender_action": "typing_on"}
    assert fake_graph_api.message_sends() == []
    with pytest.raises(ValueError):
        client.send_instagram_action(IG_ACCOUNT, "1234567890123456", "dance")
    assert len(fake_graph_api.requests) == 1  # the unknown action never left


def test_send_instagram_text(client, fake_graph_api):
    message_id = client.send_instagram_text(IG_ACCOUNT, "1234567890123456", "مرحبا")
    assert message_id.startswith("mid.FAKE")
    (request,) = fake_graph_api.requests
    assert request.path == f"/{VERSION}/{IG_ACCOUNT}/messages"
    assert request.json == {"recipient": {"id": "1234567890123456"}, "message": {"text": "مرحبا"}}
    assert fake_graph_api.sent_texts() == ["مرحبا"]


@pytest.mark.parametrize("text", ["", "   ", "x" * 4097])
def test_invalid_whatsapp_text_is_refused_before_any_request(client, fake_graph_api, text):
    with pytest.raises(ValueError):
        client.send_whatsapp_text(PNID, "15550002222", text)
    assert fake_graph_api.requests == []


def test_instagram_text_limit_counts_utf8_bytes(client, fake_graph_api):
    with pytest.raises(ValueError):
        client.send_instagram_text(IG_ACCOUNT, "1", "ب" * 501)  # 1002 bytes
    client.send_instagram_text(IG_ACCOUNT, "1", "ب" * 500)
    assert len(fake_graph_api.requests) == 1


# --- Error classification -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "subcode", "error_class", "retryable"),
    [
        (429, 130429, None, GraphRateLimitError, True),
        (400, 130429, None, GraphRateLimitError, True),  # throttling with HTTP 400
        (400, 131056, None, GraphRateLimitError, True),
        (400, 80007, None, GraphRateLimitError, True),
        (400, 4, None, GraphRateLimitError, True),
        (429, None, None, GraphRateLimitError, True),
        (401, 190, None, GraphAuthError, False),
        (400, 190, 463, GraphAuthError, False),
        (403, 200, None, GraphAuthError, False),
        (400, 10, None, GraphAuthError, False),
        (400, 131047, None, GraphWindowClosedError, False),
        (400, 10, 2018278, GraphWindowClosedError, False),  # Instagram's closed window
        (500, 2, None, GraphServerError, True),
        (500, 1, None, GraphServerError, True),
        (503, None, None, GraphServerError, True),
        (400, 2, None, GraphServerError, True),
        (500, 131000, None, GraphServerError, True),
        (400, 100, None, GraphClientError, False),
        (400, 131026, None, GraphClientError, False),
        (404, None, None, GraphClientError, False),
    ],
)
def test_error_is_classified_by_metas_code(
    client, fake_graph_api, status, code, subcode, error_class, retryable
):
    fake_graph_api.fail_next(status=status, code=code, subcode=subcode)
    with pytest.raises(error_class) as caught:
        client.send_whatsapp_text(PNID, "15550002222", "Hello")
    error = caught.value
    assert type(error) is error_class
    assert error.retryable is retryable
    assert (error.status_code, error.code, error.subcode) == (status, code, subcode)
    assert error.fbtrace_id == "AFakeTraceId000"
    assert TOKEN not in str(error) and TOKEN not in repr(error)


def test_rate_limit_then_success(client, fake_graph_api):
    fake_graph_api.fail_next(status=429, code=130429, times=2, headers={"Retry-After": "7"})
    for _ in range(2):
        with pytest.raises(GraphRateLimitError) as caught:
            client.send_whatsapp_text(PNID, "15550002222", "Hello")
        assert caught.value.retry_after == 7.0
    assert client.send_whatsapp_text(PNID, "15550002222", "Hello").startswith("wamid.FAKE")
    assert len(fake_graph_api.message_sends()) == 3
    assert fake_graph_api.sent_texts() == ["Hello"]


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (502, "<html>Bad Gateway</html>", GraphServerError),
        (400, "not json at all", GraphClientError),
        (401, b"", GraphAuthError),
        (400, {"error": "a string, not an object"}, GraphClientError),
        (400, {"error": {"code": "not-a-number", "message": 5}}, GraphClientError),
    ],
)
def test_unparseable_error_bodies_are_classified_by_http_status(
    client, fake_graph_api, status, body, error_class
):
    fake_graph_api.respond_next(status, body)
    with pytest.raises(error_class) as caught:
        client.send_whatsapp_text(PNID, "15550002222", "Hello")
    assert caught.value.code is None
    assert f"HTTP {status}" in str(caught.value)


def test_success_without_message_id_is_not_retryable(client, fake_graph_api):
    # Meta may have sent it: retrying would risk a duplicate reply.
    fake_graph_api.respond_next(200, {"messaging_product": "whatsapp"})
    with pytest.raises(GraphInvalidResponseError) as caught:
        client.send_whatsapp_text(PNID, "15550002222", "Hello")
    assert caught.value.retryable is False


def test_token_never_appears_in_the_exception_even_if_meta_echoes_it(client, fake_graph_api):
    fake_graph_api.fail_next(
        status=400,
        code=190,
        message=f"Invalid OAuth access token: {TOKEN} (access_token={TOKEN})",
    )
    with pytest.raises(GraphAuthError) as caught:
        client.send_whatsapp_text(PNID, "15550002222", "Hello")
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caught.value.message
    assert "[token]" in str(caught.value)
    assert TOKEN not in repr(client)


def test_hang_beyond_read_timeout_raises_timeout_quickly(fake_graph_api):
    fake_graph_api.hang_next(5)
    client = GraphClient(fake_graph_api.url, VERSION, TOKEN, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(GraphTimeoutError) as caught:
        client.send_whatsapp_text(PNID, "15550002222", "Hello")
    assert time.monotonic() - started < 2
    assert caught.value.retryable is True
    assert caught.value.status_code is None
    assert TOKEN not in str(caught.value)
    # The pooled default session recovers: the next call succeeds.
    assert client.send_whatsapp_text(PNID, "15550002222", "Again").startswith("wamid.FAKE")


def test_unreachable_server_is_a_retryable_connection_error(fake_graph_api):
    url = fake_graph_api.url
    fake_graph_api.stop()
    client = GraphClient(url, VERSION, TOKEN, connect_timeout=0.5, read_timeout=0.5)
    with pytest.raises(GraphConnectionError) as caught:
        client.send_whatsapp_text(PNID, "15550002222", "Hello")
    assert caught.value.retryable is True
    assert isinstance(caught.value, GraphError)


# --- Media --------------------------------------------------------------------------------


def test_get_media_url_and_download(client, fake_graph_api):
    content = b"\xff\xd8fake-jpg" * 10  # exactly 100 bytes: the limit is inclusive
    fake_graph_api.add_media("1500000000000001", content, "image/jpeg")
    media = client.get_media_url("1500000000000001")
    assert media["mime_type"] == "image/jpeg"
    assert media["file_size"] == 100
    assert media["url"].startswith(fake_graph_api.url)
    assert client.download_media(media["url"], max_bytes=100) == content
    download = fake_graph_api.requests[-1]
    assert download.headers["authorization"] == f"Bearer {TOKEN}"


def test_download_over_the_declared_size_limit_is_refused(client, fake_graph_api):
    fake_graph_api.add_media("m1", b"x" * 1000, "application/pdf")
    url = client.get_media_url("m1")["url"]
    with pytest.raises(MediaTooLargeError) as caught:
        client.download_media(url, max_bytes=999)
    assert caught.value.retryable is False


def test_download_limit_is_enforced_while_streaming_without_content_length(client, fake_graph_api):
    # A lying or missing Content-Length must not let a huge body through.
    fake_graph_api.respond_next(200, b"y" * 200_000, omit_length=True)
    with pytest.raises(MediaTooLargeError):
        client.download_media(f"{fake_graph_api.url}/media-download/any", max_bytes=1000)


def test_unauthenticated_download_does_not_send_the_token(client, fake_graph_api):
    # Instagram attachment urls are pre-signed CDN links: our token must not go there.
    fake_graph_api.respond_next(200, b"cdn-bytes")
    url = f"{fake_graph_api.url}/ig-cdn/asset?signature=FAKE"
    assert client.download_media(url, max_bytes=100, authenticated=False) == b"cdn-bytes"
    assert "authorization" not in fake_graph_api.requests[-1].headers


def test_unknown_media_id_is_a_client_error(client):
    with pytest.raises(GraphClientError) as caught:
        client.get_media_url("does-not-exist")
    assert (caught.value.code, caught.value.subcode) == (100, 33)


# --- split_text ---------------------------------------------------------------------------


def _no_characters_lost(original: str, chunks: list[str]) -> bool:
    return re.sub(r"\s", "", original) == re.sub(r"\s", "", "".join(chunks))


def test_short_text_is_one_chunk():
    assert split_text("  Hello there.  ", limit=100) == ["Hello there."]
    assert split_text("", limit=100) == []
    assert split_text(" \n ", limit=100) == []


def test_splits_on_paragraph_break_first():
    text = "First paragraph is here.\n\nSecond paragraph. It goes on."
    assert split_text(text, limit=40) == [
        "First paragraph is here.",
        "Second paragraph. It goes on.",
    ]


def test_splits_on_sentence_end_when_no_paragraph_fits():
    text = "One sentence here. Another sentence here. And a third one."
    assert split_text(text, limit=45) == [
        "One sentence here. Another sentence here.",
        "And a third one.",
    ]


def test_splits_arabic_on_its_question_mark():
    text = "هل لديكم فرع في الرياض؟ نعم لدينا فرعان في الرياض"
    chunks = split_text(text, limit=30)
    assert chunks[0] == "هل لديكم فرع في الرياض؟"
    assert _no_characters_lost(text, chunks)


def test_splits_on_words_when_no_sentence_fits():
    text = "alpha beta gamma delta epsilon zeta eta theta"
    chunks = split_text(text, limit=12)
    assert chunks == ["alpha beta", "gamma delta", "epsilon zeta", "eta theta"]


def test_cuts_a_word_only_when_it_is_longer_than_a_chunk():
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_short_leading_paragraph_is_not_sent_alone():
    text = "Hi.\n\n" + "word " * 30
    chunks = split_text(text, limit=60)
    assert len(chunks[0]) > 30
    assert all(len(c) <= 60 for c in chunks)


@pytest.mark.parametrize("limit", [1, 7, 50, 333, 4096])
def test_split_never_exceeds_limit_nor_loses_characters(limit):
    text = (
        "Lorem ipsum dolor sit amet, consectetur. Adipiscing elit!\n\n" * 40
    ) + "مرحبا بكم " * 50
    chunks = split_text(text, limit=limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert all(c == c.strip() for c in chunks)
    assert _no_characters_lost(text, chunks)


def test_split_respects_a_byte_limit_for_instagram():
    text = "مرحبا " * 400  # 11 bytes a word with its space
    chunks = split_text(text, limit=1000, max_bytes=1000)
    assert len(chunks) > 1
    assert all(len(c.encode("utf-8")) <= 1000 for c in chunks)
    assert _no_characters_lost(text, chunks)
