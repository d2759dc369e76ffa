"""Templates, reply buttons and agents' media: through the API or a signed webhook, sent to
the fake Graph API exactly as Meta would receive them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from conversations.models import Conversation, Message
from tests.conftest import inside
from tests.conversations.conftest import IG_URL, WA_URL
from tests.conversations.test_inbound_kinds import owner_api
from tests.factories import IG_ACCOUNT_ID, ChannelAccountFactory, fixture_json, post_webhook
from wafaa import ai_config

WABA = "102290129340398"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def offline(settings):
    settings.OPENAI_API_KEY = ""
    ai_config.reset_clients()
    yield
    ai_config.reset_clients()


@pytest.fixture
def run_on_commit(tenant_a, django_capture_on_commit_callbacks):
    """Run callbacks captured from a request inside the client's schema, as a worker would."""

    def run(callbacks):
        with inside(tenant_a), django_capture_on_commit_callbacks(execute=True):
            for callback in callbacks:
                callback()

    return run


@pytest.fixture
def account(tenant_a, fake_graph, settings, eager_tasks):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    settings.REPLY_QUIET_PERIOD_SECONDS = 0
    account = ChannelAccountFactory(client=tenant_a, business_account_id=WABA)
    cache.delete_many([f"wafaa:templates:{account.pk}:{WABA}"])
    fake_graph.add_template(WABA, "order_ready", body="Hi {{1}}, your order {{2}} is ready.")
    fake_graph.add_template(WABA, "order_ready", language="ar", body="مرحبا {{1}}")
    fake_graph.add_template(WABA, "promo_pending", status="PENDING", body="Not yet approved")
    return account


@pytest.fixture
def conversation(tenant_a, account):
    from conversations import services
    from tests.conversations.helpers import inbound

    with inside(tenant_a):
        message, _ = services.message_receive(account=account, inbound=inbound("Hello"))
        Message.objects.filter(pk=message.pk).update(status="answered")
        return Conversation.objects.select_related("contact").get(pk=message.conversation_id)


def close_window(tenant, conversation):
    with inside(tenant):
        Conversation.objects.filter(pk=conversation.pk).update(
            last_inbound_at=timezone.now() - timedelta(days=2)
        )


def url(tenant, path):
    return f"/api/v1/clients/{tenant.pk}/{path}"


def template_requests(fake_graph):
    return [r for r in fake_graph.requests if r.path.endswith("/message_templates")]


# --- templates ---------------------------------------------------------------------------------


def test_approved_templates_are_listed_and_cached(tenant_a, account, fake_graph):
    owner = owner_api(tenant_a)
    path = url(tenant_a, f"channels/{account.pk}/templates")
    body = owner.get(path).json()
    assert body["results"] == [
        {
            "name": "order_ready",
            "language": "en",
            "category": "UTILITY",
            "body": "Hi {{1}}, your order {{2}} is ready.",
            "parameters": 2,
        },
        {
            "name": "order_ready",
            "language": "ar",
            "category": "UTILITY",
            "body": "مرحبا {{1}}",
            "parameters": 1,
        },
    ]
    owner.get(path)
    assert len(template_requests(fake_graph)) == 1  # the second list came from the cache
    owner.get(path + "?refresh=true")
    assert len(template_requests(fake_graph)) == 2


def test_a_template_is_sent_outside_the_window_with_its_parameters(
    tenant_a, account, conversation, fake_graph, django_capture_on_commit_callbacks, run_on_commit
):
    close_window(tenant_a, conversation)
    owner = owner_api(tenant_a)
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner.post(
            url(tenant_a, f"conversations/{conversation.pk}/templates"),
            {"name": "order_ready", "language": "en", "parameters": ["Sara", "#1042"]},
            format="json",
        )
    assert response.status_code == 201, response.content
    assert response.json()["type"] == "template"
    assert response.json()["text"] == "Hi Sara, your order #1042 is ready."
    run_on_commit(callbacks)
    [send] = fake_graph.message_sends()
    assert send.json["type"] == "template"
    assert send.json["template"] == {
        "name": "order_ready",
        "language": {"code": "en"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Sara"}, {"type": "text", "text": "#1042"}],
            }
        ],
    }
    with inside(tenant_a):
        assert Message.objects.get(pk=response.json()["id"]).status == "sent"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"name": "order_ready", "language": "en", "parameters": ["only one"]},
            "template_parameters",
        ),
        ({"name": "promo_pending", "language": "en"}, "template_not_found"),
        ({"name": "order_ready", "language": "fr", "parameters": ["a", "b"]}, "template_not_found"),
    ],
)
def test_a_wrong_template_is_refused_and_nothing_is_stored(
    tenant_a, account, conversation, fake_graph, body, code
):
    response = owner_api(tenant_a).post(
        url(tenant_a, f"conversations/{conversation.pk}/templates"), body, format="json"
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == code
    with inside(tenant_a):
        assert not Message.objects.filter(direction="out").exists()
    assert fake_graph.message_sends() == []


def test_an_agent_reply_outside_the_window_names_the_templates_to_send(
    tenant_a, account, conversation, fake_graph
):
    close_window(tenant_a, conversation)
    response = owner_api(tenant_a).post(
        url(tenant_a, f"conversations/{conversation.pk}/messages"), {"text": "Hi"}, format="json"
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "window_closed"
    assert "order_ready" in error["message"] and "promo_pending" not in error["message"]
    assert error["details"]["templates"] == ["order_ready"]
    with inside(tenant_a):
        assert not Message.objects.filter(direction="out").exists()


# --- reply buttons -------------------------------------------------------------------------------


def _wa_text(text, message_id):
    payload = fixture_json("wa_text")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["text"]["body"], message["id"] = text, message_id
    return json.dumps(payload).encode()


def _wa_tap(button_id, title, message_id):
    payload = fixture_json("wa_interactive_button_reply")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["interactive"]["button_reply"] = {"id": button_id, "title": title}
    message["id"] = message_id
    return json.dumps(payload).encode()


@pytest.fixture
def webhook(client, django_capture_on_commit_callbacks, run_on_commit):
    def post(body, path=WA_URL):
        with django_capture_on_commit_callbacks() as callbacks:
            assert post_webhook(client, path, body).status_code == 200
        run_on_commit(callbacks)

    return post


def test_the_offer_of_a_person_goes_out_as_buttons_and_yes_hands_off_without_the_llm(
    tenant_a, account, offline, webhook, fake_graph, fake_llm
):
    webhook(_wa_text("Do you sell bicycles?", "wamid.Q1"))
    [offer] = fake_graph.message_sends()
    assert offer.json["type"] == "interactive"
    interactive = offer.json["interactive"]
    assert interactive["type"] == "button" and "person" in interactive["body"]["text"]
    assert [b["reply"] for b in interactive["action"]["buttons"]] == [
        {"id": "wafaa:handoff:yes", "title": "Yes, a person"},
        {"id": "wafaa:handoff:no", "title": "No, thanks"},
    ]

    webhook(_wa_tap("wafaa:handoff:yes", "Yes, a person", "wamid.TAP1"))
    with inside(tenant_a):
        conversation = Conversation.objects.get()
        tap = Message.objects.get(external_id="wamid.TAP1")
    assert (conversation.mode, conversation.handoff_reason) == ("handoff", "customer_asked")
    assert tap.payload == "wafaa:handoff:yes" and tap.status == "answered"
    assert fake_graph.sent_texts()[-1].startswith("I'm connecting you with a person")
    assert fake_llm.chat_calls == []


def test_no_thanks_keeps_the_bot_and_answers_without_the_llm(
    tenant_a, account, webhook, fake_graph, fake_llm, settings
):
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = fake_llm.url
    ai_config.reset_clients()
    try:
        webhook(_wa_tap("wafaa:handoff:no", "No, thanks", "wamid.TAP2"))
    finally:
        ai_config.reset_clients()
    with inside(tenant_a):
        assert Conversation.objects.get().mode == "bot"
    assert fake_graph.sent_texts() == ["Alright! Ask me anything else whenever you like."]
    assert fake_llm.chat_calls == []


def test_instagram_offer_uses_quick_replies_and_a_tap_hands_off(
    tenant_a, offline, webhook, fake_graph, settings, eager_tasks
):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    settings.REPLY_QUIET_PERIOD_SECONDS = 0
    ChannelAccountFactory(client=tenant_a, kind="instagram", external_id=IG_ACCOUNT_ID)
    payload = fixture_json("ig_text")
    payload["entry"][0]["messaging"][0]["message"]["text"] = "Do you sell bicycles?"
    webhook(json.dumps(payload).encode(), IG_URL)
    [offer] = fake_graph.message_sends()
    assert [q["payload"] for q in offer.json["message"]["quick_replies"]] == [
        "wafaa:handoff:yes",
        "wafaa:handoff:no",
    ]
    tap = fixture_json("ig_text")
    tap["entry"][0]["messaging"][0]["message"] = {
        "mid": "mid.TAP-IG",
        "text": "Yes, a person",
        "quick_reply": {"payload": "wafaa:handoff:yes"},
    }
    webhook(json.dumps(tap).encode(), IG_URL)
    with inside(tenant_a):
        assert Conversation.objects.get().handoff_reason == "customer_asked"


# --- agents' media ----------------------------------------------------------------------------


def test_an_uploaded_image_goes_to_whatsapps_media_store_then_to_the_customer(
    tenant_a, account, conversation, fake_graph, django_capture_on_commit_callbacks, run_on_commit
):
    upload = SimpleUploadedFile("menu.png", PNG, content_type="image/png")
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner_api(tenant_a).post(
            url(tenant_a, f"conversations/{conversation.pk}/media"),
            {"type": "image", "file": upload, "caption": "Our menu"},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    [(media_id, (mime, content))] = fake_graph.uploads.items()
    assert (mime, content) == ("image/png", PNG)
    run_on_commit(callbacks)
    [send] = fake_graph.message_sends()
    assert send.json["type"] == "image"
    assert send.json["image"] == {"id": media_id, "caption": "Our menu"}


def test_a_document_by_url_is_sent_as_a_link_with_its_filename(
    tenant_a, account, conversation, fake_graph, django_capture_on_commit_callbacks, run_on_commit
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner_api(tenant_a).post(
            url(tenant_a, f"conversations/{conversation.pk}/media"),
            {
                "type": "document",
                "url": "https://shop.example/files/price-list.pdf",
                "filename": "Price list.pdf",
            },
            format="json",
        )
    assert response.status_code == 201, response.content
    run_on_commit(callbacks)
    [send] = fake_graph.message_sends()
    assert send.json["document"] == {
        "link": "https://shop.example/files/price-list.pdf",
        "filename": "Price list.pdf",
    }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"type": "image", "file": ("big.png", PNG + b"\x00" * (5 * 1024 * 1024), "image/png")},
            413,
            "payload_too_large",
        ),
        ({"type": "image", "file": ("anim.gif", b"GIF89a", "image/gif")}, 422, "media_not_allowed"),
        ({"type": "image", "url": "http://shop.example/a.png"}, 422, "media_not_allowed"),
        ({"type": "image", "url": "https://shop.example/a.exe"}, 422, "media_not_allowed"),
        ({"type": "sticker", "url": "https://shop.example/a.webp"}, 400, "validation_error"),
    ],
    ids=["too-large", "gif-on-whatsapp", "not-https", "exe", "sticker"],
)
def test_media_outside_metas_limits_is_refused_before_anything_is_sent(
    tenant_a, account, conversation, fake_graph, body, status, code
):
    if "file" in body:
        name, content, mime = body["file"]
        body = {**body, "file": SimpleUploadedFile(name, content, content_type=mime)}
    response = owner_api(tenant_a).post(
        url(tenant_a, f"conversations/{conversation.pk}/media"),
        body,
        format="multipart" if "file" in body else "json",
    )
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert fake_graph.uploads == {} and fake_graph.message_sends() == []
    with inside(tenant_a):
        assert not Message.objects.filter(direction="out").exists()
