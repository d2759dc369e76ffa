"""The reply pipeline in process: grounded replies, bursts, idempotency, handoff, fallbacks."""

from __future__ import annotations

import pytest

from conversations import pipeline, services
from conversations.models import Conversation, Message
from knowledge.models import Chunk
from tests.conversations.helpers import add_faq_knowledge, inbound
from tests.factories import ChannelAccountFactory
from wafaa import ai_config


@pytest.fixture
def online(settings, fake_llm):
    """The LLM path: our real openai client pointed at the fake OpenAI server."""
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = fake_llm.url
    settings.LLM_TIMEOUT = 1.0
    ai_config.reset_clients()
    yield fake_llm
    ai_config.reset_clients()


@pytest.fixture
def offline(settings):
    settings.OPENAI_API_KEY = ""
    ai_config.reset_clients()
    yield
    ai_config.reset_clients()


@pytest.fixture
def account(in_tenant_a, fake_graph, settings):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    add_faq_knowledge()
    return ChannelAccountFactory(client=in_tenant_a)


def receive(account, text, **kwargs) -> Message:
    message, created = services.message_receive(account=account, inbound=inbound(text, **kwargs))
    assert created
    return message


def run(message, django_capture_on_commit_callbacks, **kwargs) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        return pipeline.reply_for_inbound(message_id=message.pk, **kwargs)


def replies(conversation_id=None):
    queryset = Message.objects.filter(direction="out")
    if conversation_id:
        queryset = queryset.filter(conversation_id=conversation_id)
    return list(queryset.order_by("created_at"))


def test_a_question_gets_one_grounded_reply_sent_to_whatsapp(
    account, online, fake_graph, eager_tasks, django_capture_on_commit_callbacks
):
    message = receive(account, "When do you open?")
    assert run(message, django_capture_on_commit_callbacks) == "answered"
    [reply] = replies()
    assert reply.status == "sent" and reply.author == "bot"
    assert reply.citations and reply.citations[0]["document"] == "FAQ"
    assert reply.prompt_tokens and reply.completion_tokens and reply.model
    message.refresh_from_db()
    assert message.status == "answered"
    assert fake_graph.sent_texts() == [reply.text]
    reads = [r.json for r in fake_graph.requests if (r.json or {}).get("status") == "read"]
    assert reads == [
        {"messaging_product": "whatsapp", "status": "read", "message_id": message.external_id}
    ]
    # The prompt carried the knowledge, the question and the persona.
    [call] = online.chat_calls
    system = call["messages"][0]["content"]
    assert "8am to 10pm" in system
    assert call["messages"][-1]["content"] == "When do you open?"


def test_a_rerun_task_sends_no_second_reply(
    account, online, fake_graph, eager_tasks, django_capture_on_commit_callbacks
):
    message = receive(account, "Do you deliver?")
    run(message, django_capture_on_commit_callbacks)
    assert run(message, django_capture_on_commit_callbacks) == "already_handled"
    assert len(replies()) == 1
    assert len(fake_graph.message_sends()) == 1


def test_a_burst_is_answered_once_by_the_newest_message(
    account, online, eager_tasks, django_capture_on_commit_callbacks
):
    first = receive(account, "Hi")
    second = receive(account, "I want to know")
    third = receive(account, "how much is a cappuccino?")
    assert run(first, django_capture_on_commit_callbacks) == "batched"
    assert run(second, django_capture_on_commit_callbacks) == "batched"
    assert run(third, django_capture_on_commit_callbacks) == "answered"
    [reply] = replies()
    assert set(reply.in_reply_to.values_list("pk", flat=True)) == {first.pk, second.pk, third.pk}
    assert online.chat_calls[0]["messages"][-1]["content"].count("\n") == 2


def test_asking_for_a_person_hands_off_and_silences_the_bot(
    account, online, eager_tasks, django_capture_on_commit_callbacks
):
    message = receive(account, "I want to speak to a human please")
    assert run(message, django_capture_on_commit_callbacks) == "handoff"
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.mode == "handoff" and conversation.handoff_reason == "customer_asked"
    assert online.chat_calls == []
    later = receive(account, "hello?")
    assert later.status == "stored"  # the bot stays silent in handoff
    assert len(replies()) == 1


def test_arabic_handoff_keyword_is_recognised(
    account, offline, eager_tasks, django_capture_on_commit_callbacks
):
    message = receive(account, "اريد التحدث مع موظف")
    assert run(message, django_capture_on_commit_callbacks) == "handoff"
    [reply] = replies()
    assert "فريقنا" in reply.text  # acknowledged in the customer's language


def test_llm_failing_every_time_gives_fallback_and_handoff(
    account, online, fake_graph, eager_tasks, django_capture_on_commit_callbacks
):
    online.fail_next(status=500, times=10)
    message = receive(account, "What are your opening hours?")
    with pytest.raises(pipeline.ReplyRetryableError):
        run(message, django_capture_on_commit_callbacks)
    assert replies() == []  # nothing sent while retries remain
    assert run(message, django_capture_on_commit_callbacks, final_attempt=True) == "handoff"
    [reply] = replies()
    assert reply.status == "sent"
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.mode == "handoff" and conversation.handoff_reason == "llm_unavailable"
    assert conversation.events.filter(kind="handoff").exists()


def test_empty_llm_output_falls_back(
    account, online, eager_tasks, django_capture_on_commit_callbacks
):
    online.reply_with("   ")
    message = receive(account, "What are your opening hours?")
    assert run(message, django_capture_on_commit_callbacks) == "handoff"
    assert replies()[0].text


def test_offline_mode_answers_a_faq_extractively(
    account, offline, fake_graph, eager_tasks, django_capture_on_commit_callbacks
):
    message = receive(account, "what are your opening hours")
    assert run(message, django_capture_on_commit_callbacks) == "answered"
    [reply] = replies()
    assert reply.text == "We are open every day from 8am to 10pm."
    assert reply.model == "extractive"


def test_unsupported_media_gets_a_polite_text_only_reply(
    account, offline, eager_tasks, django_capture_on_commit_callbacks
):
    message = receive(account, "", type_="image")
    assert run(message, django_capture_on_commit_callbacks) == "unsupported"
    assert "text" in replies()[0].text


def test_daily_message_limit_routes_to_fallback_and_handoff(
    account, offline, in_tenant_a, eager_tasks, django_capture_on_commit_callbacks
):
    in_tenant_a.messages_per_day = 0
    in_tenant_a.save(update_fields=["messages_per_day"])
    message = receive(account, "What are your opening hours?")
    assert run(message, django_capture_on_commit_callbacks) == "handoff"
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.handoff_reason == "plan_limit"


def test_two_low_confidence_questions_in_a_row_hand_off(
    account, offline, in_tenant_a, eager_tasks, django_capture_on_commit_callbacks
):
    in_tenant_a.confidence_threshold = 0.99
    in_tenant_a.save(update_fields=["confidence_threshold"])
    first = receive(account, "Tell me about quantum physics")
    assert run(first, django_capture_on_commit_callbacks) == "fallback"
    second = receive(account, "And astrophysics?")
    assert run(second, django_capture_on_commit_callbacks) == "handoff"


def test_context_is_cached_and_invalidated_when_a_message_arrives(account, offline):
    from django.core.cache import cache

    message = receive(account, "first")
    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert pipeline._context(conversation, exclude=[]) == [{"role": "user", "content": "first"}]
    assert cache.get(services.context_cache_key(conversation.pk)) is not None
    receive(account, "second")
    assert cache.get(services.context_cache_key(conversation.pk)) is None
    assert [m["content"] for m in pipeline._context(conversation, exclude=[])] == [
        "first",
        "second",
    ]


def test_very_long_text_is_truncated_for_the_prompt_and_kept_whole(
    account, online, settings, eager_tasks, django_capture_on_commit_callbacks
):
    settings.MAX_INBOUND_TEXT_CHARS = 500
    message = receive(account, "a" * 20_000)
    run(message, django_capture_on_commit_callbacks)
    message.refresh_from_db()
    assert len(message.text) == 20_000
    assert len(online.chat_calls[0]["messages"][-1]["content"]) < 2_500


def test_offline_every_question_of_a_burst_is_answered_in_one_message(
    account, offline, fake_graph, eager_tasks, django_capture_on_commit_callbacks
):
    first = receive(account, "Hi!")
    second = receive(account, "What are your opening hours?")
    third = receive(account, "And how much is a cappuccino?")
    for message in (first, second):
        assert run(message, django_capture_on_commit_callbacks) == "batched"
    assert run(third, django_capture_on_commit_callbacks) == "answered"
    [reply] = replies()
    assert "8am to 10pm" in reply.text and "18 MAD" in reply.text
    assert reply.text.index("8am") < reply.text.index("18 MAD")  # in the order asked
    assert len({c["chunk_id"] for c in reply.citations}) == 2
    assert fake_graph.sent_texts() == [reply.text]


def test_the_grounded_prompt_carries_excerpts_language_questions_and_the_dont_know_rule(
    account, online, in_tenant_a, eager_tasks, django_capture_on_commit_callbacks
):
    in_tenant_a.languages = ["en", "ar", "fr"]
    in_tenant_a.save(update_fields=["languages"])
    receive(account, "Bonjour, à quelle heure ouvrez-vous ?")
    last = receive(account, "Et combien coûte un cappuccino ?")
    assert run(last, django_capture_on_commit_callbacks) == "answered"
    [call] = online.chat_calls
    system = call["messages"][0]["content"]
    assert "French, the customer's language" in system
    assert "say you don't know" in system
    assert "Answer EACH of them" in system
    assert "- Bonjour, à quelle heure ouvrez-vous ?" in system
    assert "- Et combien coûte un cappuccino ?" in system
    assert "[1]" in system and "[2]" in system  # numbered excerpts: what citations point to
    [reply] = replies()
    cited = {c["chunk_id"] for c in reply.citations}
    assert cited and all(c["document"] == "FAQ" for c in reply.citations)
    excerpts = [c.text for c in Chunk.objects.filter(pk__in=cited)]
    assert all(text in system for text in excerpts)


def test_a_persian_question_is_not_answered_in_arabic(
    account, offline, eager_tasks, django_capture_on_commit_callbacks
):
    message = receive(account, "ساعت کاری فروشگاه شما چیست؟")
    assert run(message, django_capture_on_commit_callbacks) == "fallback"
    [reply] = replies()
    assert reply.text.startswith("متأسفم")  # Persian, not the Arabic "عذرًا"
