"""Voice notes and pictures through a signed webhook: transcribed or looked at with a key,
the polite "please write" (or the client's unsupported_media setting) without one; media is
fetched only from Meta's media hosts."""

from __future__ import annotations

import json

import pytest

from channels_app import graph
from conversations import outbound
from conversations.models import Conversation, Message
from tests.conftest import inside
from tests.conversations.conftest import IG_URL
from tests.factories import fixture_json
from wafaa import ai_config

VOICE_ID = "1500000000000002"  # the media id in wa_audio.json
IMAGE_ID = "1500000000000001"  # the media id in wa_image.json
VOICE = b"OggS\x00\x02fake-opus-voice-note"
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 32
PLEASE_WRITE = "Sorry, I can only read text messages for now. Could you type your question?"


@pytest.fixture
def meta_hosts(settings, fake_graph):
    """The fake Graph API's address counts as Meta's media host in these tests."""
    settings.MEDIA_ALLOWED_HOSTS = ["127.0.0.1"]


def media_requests(fake_graph):
    return [r for r in fake_graph.requests if r.path.startswith("/media-download/")]


def uncaptioned_image() -> bytes:
    payload = fixture_json("wa_image")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["caption"]
    return json.dumps(payload).encode()


def only_inbound(tenant) -> Message:
    with inside(tenant):
        return Message.objects.get(direction="in")


def test_a_voice_note_is_transcribed_and_answered_like_text(
    wa_shop, deliver, tenant_a, fake_graph, online, meta_hosts, api
):
    fake_graph.add_media(VOICE_ID, VOICE, "audio/ogg")
    online.add_transcript(VOICE, "What are your opening hours?")
    deliver("wa_audio")
    [call] = online.transcription_calls
    assert call["model"] == "gpt-4o-mini-transcribe" and call["size"] == len(VOICE)
    assert call["content_type"] == "audio/ogg"
    [chat] = online.chat_calls
    assert chat["messages"][-1]["content"] == "What are your opening hours?"
    assert fake_graph.sent_texts() == ["We are open every day from 8am to 10pm."]
    voice = only_inbound(tenant_a)
    assert voice.transcript == "What are your opening hours?" and voice.status == "answered"


def test_the_transcription_model_is_a_setting(
    wa_shop, deliver, fake_graph, online, meta_hosts, settings
):
    settings.TRANSCRIPTION_MODEL = "whisper-1"
    ai_config.reset_clients()
    fake_graph.add_media(VOICE_ID, VOICE, "audio/ogg")
    online.add_transcript(VOICE, "Do you deliver?")
    deliver("wa_audio")
    assert [c["model"] for c in online.transcription_calls] == ["whisper-1"]


def test_offline_a_voice_note_gets_the_polite_please_write(
    wa_shop, deliver, tenant_a, fake_graph, meta_hosts, settings
):
    settings.OPENAI_API_KEY = ""
    ai_config.reset_clients()
    tenant_a.unsupported_media = "handoff"  # a voice note still asks to write
    tenant_a.save(update_fields=["unsupported_media"])
    fake_graph.add_media(VOICE_ID, VOICE, "audio/ogg")
    deliver("wa_audio")
    assert fake_graph.sent_texts() == [PLEASE_WRITE]
    assert media_requests(fake_graph) == []  # nothing fetched that could not be used
    with inside(tenant_a):
        assert Conversation.objects.get().mode == "bot"


def test_a_voice_note_that_cannot_be_heard_gets_the_polite_please_write(
    wa_shop, deliver, fake_graph, online, meta_hosts
):
    fake_graph.add_media(VOICE_ID, VOICE, "audio/ogg")  # the fake hears silence in it
    deliver("wa_audio")
    assert len(online.transcription_calls) == 1 and online.chat_calls == []
    assert fake_graph.sent_texts() == [PLEASE_WRITE]


def test_media_outside_metas_hosts_is_never_fetched(wa_shop, deliver, fake_graph, online):
    # The default allow-list (Meta's media hosts) does not include the fake's 127.0.0.1.
    fake_graph.add_media(VOICE_ID, VOICE, "audio/ogg")
    deliver("wa_audio")
    assert media_requests(fake_graph) == [] and online.transcription_calls == []
    assert fake_graph.sent_texts() == [PLEASE_WRITE]


def test_a_redirect_off_metas_hosts_is_refused_without_following_it(
    wa_shop, deliver, tenant_a, fake_graph, meta_hosts, online
):
    fake_graph.add_media(VOICE_ID, VOICE, "audio/ogg")
    deliver("wa_audio", run=False)
    voice = only_inbound(tenant_a)
    fake_graph.respond_next(200, {"url": f"{fake_graph.url}/media-download/{VOICE_ID}"})
    fake_graph.respond_next(302, b"", headers={"Location": "http://10.1.2.3/steal"})
    with inside(tenant_a), pytest.raises(graph.MediaHostNotAllowedError):
        outbound.media_fetch(message_id=voice.pk)
    assert [r.path for r in fake_graph.requests][-1] == f"/media-download/{VOICE_ID}"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("lookaside.fbsbx.com", True),
        ("scontent.xx.fbcdn.net", True),
        ("scontent-cdg4-1.cdninstagram.com", True),
        ("mmg.whatsapp.net", True),
        ("fbsbx.com", True),
        ("evil-fbsbx.com", False),
        ("fbsbx.com.evil.example", False),
        ("169.254.169.254", False),
        ("localhost", False),
    ],
)
def test_media_host_allow_list(host, allowed):
    assert outbound.media_host_allowed(host) is allowed


def test_an_instagram_attachment_url_off_metas_hosts_is_not_fetched(
    ig_shop, deliver, tenant_a, fake_graph
):
    payload = fixture_json("ig_attachment_image")
    attachment = payload["entry"][0]["messaging"][0]["message"]["attachments"][0]
    attachment["payload"]["url"] = f"{fake_graph.url}/media-download/anything"
    deliver(json.dumps(payload).encode(), url=IG_URL, run=False)
    message = only_inbound(tenant_a)
    with inside(tenant_a), pytest.raises(graph.MediaHostNotAllowedError):
        outbound.media_fetch(message_id=message.pk)
    assert media_requests(fake_graph) == []


def test_a_caption_is_a_question_like_any_text(wa_shop, deliver, fake_graph, online, meta_hosts):
    deliver("wa_image")
    [chat] = online.chat_calls
    assert chat["messages"][-1]["content"] == "Is this one in stock?"
    assert media_requests(fake_graph) == []  # the caption is enough


def test_a_picture_without_caption_goes_to_a_vision_model_with_the_knowledge(
    wa_shop, deliver, tenant_a, fake_graph, online, meta_hosts, settings
):
    settings.VISION_MODEL = "gpt-4o"
    ai_config.reset_clients()
    fake_graph.add_media(IMAGE_ID, JPEG, "image/jpeg")

    def reply(body):
        if not any(m["role"] == "system" for m in body["messages"]):
            return "A cappuccino in a takeaway cup."  # the description call
        return "A cappuccino costs 18 MAD."

    online.reply_fn(reply)
    deliver(uncaptioned_image())
    describe, answer = online.chat_calls
    for call in (describe, answer):
        assert call["model"] == "gpt-4o"
        images = [p for p in call["messages"][-1]["content"] if p["type"] == "image_url"]
        assert [i["image_url"]["url"][:23] for i in images] == ["data:image/jpeg;base64,"]
    assert "18 MAD" in answer["messages"][0]["content"]  # the knowledge context
    picture = only_inbound(tenant_a)
    assert picture.transcript == "[picture] A cappuccino in a takeaway cup."
    assert fake_graph.sent_texts() == ["A cappuccino costs 18 MAD."]


def test_offline_a_picture_without_caption_follows_unsupported_media(
    wa_shop, deliver, tenant_a, fake_graph, meta_hosts, settings
):
    settings.OPENAI_API_KEY = ""
    ai_config.reset_clients()
    tenant_a.unsupported_media = "handoff"
    tenant_a.save(update_fields=["unsupported_media"])
    deliver(uncaptioned_image())
    with inside(tenant_a):
        conversation = Conversation.objects.get()
    assert (conversation.mode, conversation.handoff_reason) == ("handoff", "unsupported_media")
    assert media_requests(fake_graph) == []
