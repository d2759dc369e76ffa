"""Replies: the chat client against the fake OpenAI server, the grounded prompt, the handoff
marker, and the offline extractive answerer with its messages per language."""

from __future__ import annotations

import time

import pytest

from wafaa.ai.answerer import (
    FALLBACK_MESSAGES,
    HANDOFF_MESSAGES,
    UNSUPPORTED_MEDIA_MESSAGES,
    detect_language,
    extractive_answer,
    fallback_message,
    unsupported_media_message,
)
from wafaa.ai.llm import (
    HANDOFF_MARKER,
    ChatClient,
    LLMEmptyResponseError,
    LLMPermanentError,
    LLMTransientError,
    build_grounded_messages,
    strip_handoff_marker,
)

# The `fake_openai` fixture: a FakeOpenAI server per test.
pytest_plugins = ["tests.fakes.openai_server"]

KEY = "sk-test-0123456789abcdefSECRET"

DELIVERY_CHUNK = {
    "text": "Help \u203a Delivery\n\nWe deliver in 2 to 4 working days.\nFree over 500 MAD.",
    "title": "Help page",
    "score": 0.82,
}
FAQ_CHUNK = {
    "text": "Q: Do you ship abroad?\nA: Not yet, we only ship within Morocco.",
    "title": "FAQ",
    "score": 0.61,
}


def grounded(question: str = "How long does delivery take?", chunks=None, **kwargs):
    defaults = {
        "persona": "A friendly shoe shop in Casablanca.",
        "bot_name": "Amal",
        "languages": ["ar", "fr", "en"],
        "context_messages": [],
        "question": question,
        "chunks": [DELIVERY_CHUNK, FAQ_CHUNK] if chunks is None else chunks,
    }
    return build_grounded_messages(**{**defaults, **kwargs})


def chat(fake, **kwargs) -> ChatClient:
    return ChatClient(api_key=KEY, base_url=fake.url, **kwargs)


# ---- chat client -----------------------------------------------------------------------------


def test_a_reply_comes_back_with_tokens_latency_and_model(fake_openai):
    result = chat(fake_openai, model="gpt-4o-mini").complete(grounded(), max_tokens=300)

    assert result.text == "We deliver in 2 to 4 working days."  # the fake's grounded echo
    assert result.model == "gpt-4o-mini"
    assert result.prompt_tokens > 100
    assert result.completion_tokens > 0
    assert result.latency_ms >= 0
    assert result.finish_reason == "stop"
    (call,) = fake_openai.chat_calls
    assert call["model"] == "gpt-4o-mini"
    assert call["max_tokens"] == 300
    assert call["messages"][0]["role"] == "system"


def test_a_server_error_is_transient_and_not_retried_by_the_sdk(fake_openai):
    fake_openai.fail_next(500)
    with pytest.raises(LLMTransientError) as caught:
        chat(fake_openai).complete(grounded())
    assert caught.value.status_code == 500
    assert len(fake_openai.chat_calls) == 1  # Celery owns retries


def test_a_rate_limit_is_transient(fake_openai):
    fake_openai.fail_next(429)
    with pytest.raises(LLMTransientError):
        chat(fake_openai).complete(grounded())


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_permanent(fake_openai, status):
    fake_openai.fail_next(status)
    with pytest.raises(LLMPermanentError) as caught:
        chat(fake_openai).complete(grounded())
    assert caught.value.status_code == status
    assert KEY not in caught.value.message and KEY[-4:] not in caught.value.message


def test_a_bad_key_says_which_setting_to_fix(fake_openai):
    fake_openai.fail_next(401)
    with pytest.raises(LLMPermanentError) as caught:
        chat(fake_openai).complete(grounded())
    assert "OPENAI_API_KEY" in caught.value.message


@pytest.mark.parametrize("reply", ["", "   \n "])
def test_an_empty_reply_is_its_own_error(fake_openai, reply):
    fake_openai.reply_with(reply)
    with pytest.raises(LLMEmptyResponseError) as caught:
        chat(fake_openai).complete(grounded())
    assert caught.value.finish_reason == "stop"


def test_a_hanging_model_times_out_as_transient_quickly(fake_openai):
    fake_openai.hang_next(5)
    started = time.monotonic()
    with pytest.raises(LLMTransientError) as caught:
        chat(fake_openai, timeout=0.5).complete(grounded())
    assert time.monotonic() - started < 3
    assert caught.value.code == "timeout"


def test_an_unreachable_server_is_transient():
    client = ChatClient(api_key=KEY, base_url="http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(LLMTransientError) as caught:
        client.complete(grounded())
    assert caught.value.code == "connection_error"


def test_without_excerpts_the_fake_model_asks_for_a_person(fake_openai):
    result = chat(fake_openai).complete(grounded(chunks=[]))
    text, wants_handoff = strip_handoff_marker(result.text)
    assert wants_handoff
    assert HANDOFF_MARKER not in text and text


# ---- grounded prompt -------------------------------------------------------------------------


def test_the_prompt_numbers_the_excerpts_and_grounds_the_answer_in_them():
    system = grounded()[0]["content"]
    assert "You are Amal" in system
    assert "A friendly shoe shop in Casablanca." in system
    assert "Answer ONLY from the numbered knowledge excerpts" in system
    assert "Arabic, French, English" in system
    assert HANDOFF_MARKER in system
    assert "[1] (from: Help page)\nHelp \u203a Delivery" in system
    assert "[2] (from: FAQ)\nQ: Do you ship abroad?" in system
    assert system.index("[1]") < system.index("[2]")


def test_the_prompt_says_so_when_nothing_matched():
    system = grounded(chunks=[])[0]["content"]
    assert "[1]" not in system
    assert "nothing in the knowledge base matches" in system


def test_a_long_question_is_truncated_for_the_prompt():
    messages = grounded(question="Where is my order? " * 500, max_question_chars=300)
    question = messages[-1]
    assert question["role"] == "user"
    assert len(question["content"]) < 400
    assert "shortened" in question["content"]


def test_context_keeps_the_latest_turns_within_budget_and_maps_roles():
    context = [{"role": "user", "content": f"old message {i} " * 20} for i in range(20)]
    context += [
        {"role": "agent", "content": "A person from the team answered this."},
        {"role": "system", "content": "ignored"},
        {"role": "customer", "content": "Thanks! And delivery?"},
    ]
    messages = grounded(
        question="Thanks! And delivery?", context_messages=context, max_context_chars=600
    )
    middle = messages[1:-1]
    assert sum(len(m["content"]) for m in middle) <= 600
    assert middle[-1] == {"role": "assistant", "content": "A person from the team answered this."}
    assert "old message 19" in middle[-2]["content"]
    assert "old message 0 " not in " ".join(m["content"] for m in middle)
    # The question being answered is sent once, at the end.
    assert messages[-1] == {"role": "user", "content": "Thanks! And delivery?"}


def test_excerpts_stop_at_the_knowledge_budget():
    chunks = [
        {"text": f"Excerpt {i}: " + "detail " * 150, "title": "", "score": 0.5} for i in range(20)
    ]
    system = grounded(chunks=chunks, max_knowledge_chars=3000)[0]["content"]
    assert "[1]" in system
    assert "[20]" not in system
    excerpts = system.split("Knowledge excerpts:")[1]
    assert len(excerpts) < 3300


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Sorry, I don't know.\n[HANDOFF]", ("Sorry, I don't know.", True)),
        ("Sorry. [ handoff ]", ("Sorry.", True)),
        ("We open at 9.", ("We open at 9.", False)),
        ("[HANDOFF]", ("", True)),
    ],
)
def test_the_handoff_marker_is_stripped_and_reported(reply, expected):
    assert strip_handoff_marker(reply) == expected


# ---- extractive answerer ---------------------------------------------------------------------


def test_a_faq_chunk_answers_with_its_answer():
    chunks = [
        {"id": "c1", "text": "Help\n\nSomething else.", "metadata": {"kind": "text"}, "score": 0.4},
        {
            "id": "c2",
            "text": "Q: Do you ship abroad?\nA: Not yet, we only ship within Morocco.",
            "metadata": {"kind": "faq", "question": "Do you ship abroad?"},
            "score": 0.9,
        },
    ]
    result = extractive_answer("Do you ship to France?", chunks, min_score=0.5)
    assert result.confident
    assert result.text == "Not yet, we only ship within Morocco."
    assert result.used_chunks == ["c2"]
    assert result.language == "en"


def test_a_text_chunk_answers_with_its_most_relevant_sentences():
    text = (
        "Store handbook \u203a Returns\n\n"
        "Welcome to our store. We love shoes. "
        "You can return any item within 30 days of delivery. Refunds take 7 days."
    )
    chunks = [{"text": text, "metadata": {"kind": "text", "heading": "Returns"}, "score": 0.7}]
    result = extractive_answer("Can I return an item?", chunks, min_score=0.5)
    assert result.confident
    assert result.text.startswith("You can return any item within 30 days of delivery.")
    assert "Store handbook" not in result.text
    assert result.used_chunks == [0]


def test_a_long_passage_is_trimmed():
    text = " ".join(f"Sentence {i} about delivery options and prices." for i in range(100))
    chunks = [{"text": text, "metadata": {"kind": "text"}, "score": 0.9}]
    result = extractive_answer("delivery", chunks, min_score=0.5, max_chars=600)
    assert len(result.text) <= 601


def test_below_the_threshold_an_arabic_question_gets_the_arabic_fallback():
    chunks = [{"text": "Q: Opening hours?\nA: 9 to 7.", "metadata": {"kind": "faq"}, "score": 0.2}]
    result = extractive_answer("هل عندكم أحذية للأطفال؟", chunks, min_score=0.5)
    assert not result.confident
    assert result.text == FALLBACK_MESSAGES["ar"]
    assert result.used_chunks == []
    assert result.language == "ar"


def test_no_chunks_at_all_is_not_confident():
    result = extractive_answer("Do you sell socks?", [], min_score=0.1)
    assert not result.confident
    assert result.text == FALLBACK_MESSAGES["en"]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("How much is delivery to Rabat?", "en"),
        ("كم ثمن التوصيل إلى الرباط؟", "ar"),
        ("Bonjour, combien coûte la livraison ?", "fr"),
        ("Hola, ¿cuánto cuesta el envío?", "es"),
        ("👍", "en"),
    ],
)
def test_language_is_detected_from_script_and_common_words(text, language):
    assert detect_language(text) == language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("قیمت این چقدر است؟", "fa"),  # Persian: Arabic script, not Arabic
        ("یہ کتنے کا ہے؟", "ur"),  # Urdu
        ("kam se3r el mandi?", "ar"),  # Arabizi reads as Arabic
        ("wach 3andkom livraison?", "ar"),
        ("combien coûte la vidange ?", "en"),  # French is not among the client's languages
    ],
)
def test_language_is_chosen_among_the_clients_languages(text, language):
    assert detect_language(text, languages=["en", "ar"]) == language


def test_every_language_has_all_canned_messages():
    assert FALLBACK_MESSAGES.keys() == UNSUPPORTED_MEDIA_MESSAGES.keys() == HANDOFF_MESSAGES.keys()
    assert unsupported_media_message("ar") == UNSUPPORTED_MEDIA_MESSAGES["ar"]
    assert fallback_message("de") == FALLBACK_MESSAGES["en"]  # unknown → English
    # Persian and Urdu customers get their own language, not Arabic.
    assert "متأسفم" in fallback_message("fa") and "معذرت" in fallback_message("ur")
