"""The reply pipeline: context → retrieve → generate → store → send. Runs in a worker.

`reply_for_inbound(message_id=...)` is called by the thin task `handle_inbound_task` inside the
message's client schema. It is idempotent and serialised per conversation:

- a lock per conversation (Redis) so two workers never answer the same conversation at once;
- a burst of customer messages is answered once: each inbound message's task is delayed by the
  quiet period, and only the task of the newest open message answers (all of them together);
- the reply is stored and the answered messages are marked in one transaction, and the send
  task is enqueued on commit, so a re-run task finds nothing open and sends nothing twice;
- right before storing, the conversation is re-read: if a person took over meanwhile, the
  draft is kept as `not_sent`.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from conversations import handoff, media, offers, services
from conversations.models import Conversation, Message
from wafaa import ai_config, metrics, otel
from wafaa.ai import answerer, confidence
from wafaa.ai.llm import (
    LLMEmptyResponseError,
    LLMError,
    LLMTransientError,
    build_grounded_messages,
    strip_handoff_marker,
)
from wafaa.redis import get_redis
from wafaa.text import STOPWORDS, split_sentences, words

logger = logging.getLogger(__name__)

OPEN_STATUSES = (Message.Status.RECEIVED, Message.Status.PROCESSING)
MAX_REPLY_CHARS = 3000
_LETTERS = re.compile(r"\w", re.UNICODE)


class ReplyRetryableError(Exception):
    """The LLM failed transiently; Celery retries the task with backoff."""


class ConversationBusyError(Exception):
    """Another worker holds this conversation's lock; retry shortly."""


@dataclass
class Draft:
    text: str
    outcome: str  # answered | fallback | handoff | unsupported | extractive
    citations: list[dict] = field(default_factory=list)
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int | None = None
    handoff_reason: str = ""
    confidence: float | None = None  # how sure we are of the best entry (wafaa.ai.confidence)
    candidate: str = ""  # offline: the answer a lower threshold would have given
    buttons: list[dict] = field(default_factory=list)  # reply buttons sent with the text


def _client():
    return connection.tenant


def reply_for_inbound(*, message_id, final_attempt: bool = False, send: bool = True) -> str:
    """Answer the open inbound messages of `message_id`'s conversation, once."""
    message = Message.objects.filter(pk=message_id).select_related("conversation").first()
    if message is None:
        logger.warning("inbound message not found (deleted?)", extra={"message_id": message_id})
        return "missing"
    if message.status not in OPEN_STATUSES:
        return "already_handled"
    lock = get_redis().lock(
        f"wafaa:conversation:{connection.schema_name}:{message.conversation_id}",
        timeout=settings.CELERY_TASK_TIME_LIMIT,
        blocking_timeout=5,
    )
    if not lock.acquire():
        raise ConversationBusyError(f"conversation {message.conversation_id} is busy")
    try:
        return _reply_locked(message, final_attempt=final_attempt, send=send)
    finally:
        try:
            lock.release()
        except Exception:
            logger.warning("conversation lock expired before release")


def _reply_locked(message: Message, *, final_attempt: bool, send: bool) -> str:
    conversation = Conversation.objects.select_related("contact").get(pk=message.conversation_id)
    pending = list(
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.IN, status__in=OPEN_STATUSES
        ).order_by("created_at", "pk")
    )
    if message.pk not in {m.pk for m in pending}:
        return "already_handled"
    if pending[-1].pk != message.pk:
        return "batched"  # a newer message's task answers the whole burst
    if unsent := [m.pk for m in pending if m.deleted_at]:
        # The customer unsent these before we answered: never answer them.
        Message.objects.filter(pk__in=unsent).update(status=Message.Status.STORED)
        pending = [m for m in pending if not m.deleted_at]
        if not pending:
            return "deleted"
    if conversation.mode != Conversation.Mode.BOT:
        Message.objects.filter(pk__in=[m.pk for m in pending]).update(
            status=Message.Status.STORED, updated_at=timezone.now()
        )
        return "stored"
    Message.objects.filter(pk__in=[m.pk for m in pending]).update(
        status=Message.Status.PROCESSING, updated_at=timezone.now()
    )
    started = time.monotonic()
    client = _client()
    draft = _draft_for(client, conversation, pending, final_attempt=final_attempt)
    return _store_and_send(client, conversation, pending, draft, started, send=send)


def _question_text(pending: list[Message]) -> str:
    # A voice note's transcript and a picture's description are questions like any text.
    texts = [(m.text or m.transcript).strip() for m in pending if (m.text or m.transcript).strip()]
    return "\n".join(texts)[: settings.MAX_INBOUND_TEXT_CHARS]


def _draft_for(
    client, conversation: Conversation, pending: list[Message], *, final_attempt
) -> Draft:
    question = _question_text(pending)
    language = question_language(client, question)

    if not _within_daily_limit(client):
        logger.warning(
            "plan messages-per-day limit reached: fallback and handoff",
            extra={"client": client.slug},
        )
        return Draft(
            _fallback(client, language),
            outcome="handoff",
            handoff_reason="plan_limit",
        )
    if tap := offers.tapped(pending):  # a reply button of the bot's offer: no LLM needed
        tap_language = offers.tap_language(pending)
        if tap == offers.HANDOFF_YES:
            return Draft(
                _handoff_ack(tap_language), outcome="handoff", handoff_reason="customer_asked"
            )
        return Draft(offers.declined_message(tap_language), outcome="declined")
    # Voice notes and uncaptioned pictures become words (with a key): after the plan check,
    # so a client over its limit is not billed for transcriptions.
    understood = media.pending_understand(pending)
    if any(m.transcript for m in pending):
        question = _question_text(pending)
        language = question_language(client, question) if question else language
    if not question and understood.voice_unheard:
        # Voice notes we could not hear (offline, or a failed transcription): ask to write.
        return Draft(answerer.unsupported_media_message(language), outcome="unsupported")
    if not question:
        # Only media, stickers, locations...: we cannot read them yet.
        if client.unsupported_media == client.UnsupportedMedia.HANDOFF:
            return Draft(
                _handoff_ack(language), outcome="handoff", handoff_reason="unsupported_media"
            )
        return Draft(
            answerer.unsupported_media_message(language),
            outcome="unsupported",
        )
    return draft_answer(
        client=client,
        question=question,
        language=language,
        conversation=conversation,
        context=_context(conversation, exclude=[m.pk for m in pending]),
        final_attempt=final_attempt,
        images=understood.images,
    )


def question_language(client, text: str) -> str:
    """The language to answer `text` in, among the client's configured languages."""
    if not text:
        return "en"
    return answerer.detect_language(text, languages=client.languages or None)


def draft_answer(
    *,
    client,
    question: str,
    language: str,
    conversation: Conversation | None = None,
    context: list[dict] | None = None,
    final_attempt: bool = True,
    images: list | None = None,
) -> Draft:
    """The reply to a customer's text: handoff keywords, retrieval, confidence, then the LLM
    or the extractive answerer. Without `conversation` (an evaluation) nothing is written."""
    if handoff.asks_for_person(question, client.handoff_keywords):
        return Draft(_handoff_ack(language), outcome="handoff", handoff_reason="customer_asked")

    asked = _assess_questions(question, language, client.confidence_threshold)
    chunks = _chunks_for(asked)
    citations = [_citation(c) for c in chunks]
    best = max((a.assessment.confidence for a in asked), default=0.0)
    meaningful = bool(_LETTERS.search(question))
    low_confidence = meaningful and best < client.confidence_threshold
    streak = _confidence_streak(conversation, low_confidence) if conversation else 0
    if low_confidence and streak >= 2:
        return Draft(
            _handoff_ack(language),
            outcome="handoff",
            citations=citations,
            handoff_reason="low_confidence",
            confidence=best,
        )

    chat = ai_config.get_chat_client(client.effective_model())
    if chat is None:
        return _extractive_draft(client, asked, language, best)

    messages = build_grounded_messages(
        persona=client.persona,
        bot_name=client.bot_name,
        languages=client.languages or [],
        context_messages=context or [],
        question=question,
        chunks=[{"text": c.text, "title": c.document_title, "score": c.score} for c in chunks],
        language=language,
        questions=[a.text for a in asked] if len(asked) > 1 else None,
    )
    model = client.effective_model()
    if images:  # the picture goes with the question, to a model that can see it
        messages = media.attach_images(messages, images)
        model = settings.VISION_MODEL
        chat = ai_config.get_chat_client(model)
    try:
        with metrics.LLM_LATENCY.labels(model=model).time(), otel.stage("llm", model=model):
            result = chat.complete(messages)
    except LLMTransientError as exc:
        metrics.LLM_CALLS.labels(model=model, result="transient_error").inc()
        if not final_attempt:
            raise ReplyRetryableError(str(exc)) from None
        logger.error("LLM kept failing: fallback and handoff", extra={"error": str(exc)})
        return Draft(
            _fallback(client, language), outcome="handoff", handoff_reason="llm_unavailable"
        )
    except (LLMEmptyResponseError, LLMError) as exc:
        metrics.LLM_CALLS.labels(model=model, result="error").inc()
        logger.error("LLM failed permanently: fallback and handoff", extra={"error": str(exc)})
        return Draft(_fallback(client, language), outcome="handoff", handoff_reason="llm_error")
    metrics.LLM_CALLS.labels(model=model, result="ok").inc()
    metrics.LLM_TOKENS.labels(model=model, kind="prompt").inc(result.prompt_tokens or 0)
    metrics.LLM_TOKENS.labels(model=model, kind="completion").inc(result.completion_tokens or 0)
    text, wants_handoff = strip_handoff_marker(result.text)
    text = text.strip()
    if not text or len(text) > MAX_REPLY_CHARS:
        logger.warning("LLM answer empty or over-long: fallback", extra={"length": len(text)})
        return Draft(
            _fallback(client, language),
            outcome="handoff",
            handoff_reason="llm_bad_output",
            model=result.model,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_ms=result.latency_ms,
        )
    return Draft(
        text,
        outcome="handoff" if wants_handoff else "answered",
        citations=citations,
        model=result.model,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        latency_ms=result.latency_ms,
        handoff_reason="model_suggested" if wants_handoff else "",
        confidence=best,
    )


# The most questions of one burst answered one by one; more are answered as one text.
MAX_BURST_QUESTIONS = 5
# Candidates per question: a bilingual FAQ entry is one chunk per language.
RETRIEVE_K = 16


@dataclass
class _Asked:
    text: str
    assessment: confidence.Assessment
    chunks: list


def _burst_questions(text: str) -> list[str]:
    """The distinct questions of a burst: its messages and sentences that carry content
    words ("Hi" and "I want to know" alone are no question)."""
    parts = [
        p
        for p in split_sentences(text, lines=True)
        if any(len(w) > 1 and w not in STOPWORDS for w in words(p))
    ]
    distinct = list(dict.fromkeys(parts))
    if len(distinct) <= 1 or len(distinct) > MAX_BURST_QUESTIONS:
        return [text]
    return distinct


def _assess(text: str, language: str) -> _Asked:
    from knowledge.services import retrieve

    with otel.stage("retrieve"):
        chunks = retrieve(confidence.expand_query(text), k=RETRIEVE_K)
    candidates = [
        confidence.Candidate(
            text=c.text,
            metadata=c.metadata,
            similarity=c.similarity,
            keyword=c.keyword_rank,
            key=f"{c.document_id}:{c.metadata.get('entry', c.chunk_id)}",
            ref=c,
        )
        for c in chunks
    ]
    return _Asked(text, confidence.assess(text, candidates, language=language), chunks)


def _assess_questions(text: str, language: str, threshold: float) -> list[_Asked]:
    """Each question of the burst with its best entry. Parts that are neither answerable nor
    asked as a question ("one question", "I want to know") are dropped; when that leaves no
    answerable question and fewer than two asked ones, the burst is read as one question."""
    questions = _burst_questions(text)
    asked = [_assess(q, language) for q in questions]
    if len(asked) == 1:
        return asked
    kept = [
        a
        for a in asked
        if a.assessment.confidence >= threshold or a.text.rstrip().endswith(("?", "\u061f"))
    ]
    if len(kept) >= 2 or (kept and kept[0].assessment.confidence >= threshold):
        return kept
    return [_assess(text, language)]


def _chunks_for(asked: list[_Asked]) -> list:
    """The chunks behind the answers, best entry of each question first, without repeats."""
    chosen, seen = [], set()
    for item in asked:
        best = item.assessment.best
        ordered = ([best.ref] if best else []) + item.chunks
        for chunk in ordered:
            if chunk.chunk_id not in seen:
                seen.add(chunk.chunk_id)
                chosen.append(chunk)
    return chosen[: 8 + 2 * (len(asked) - 1)]


def _citation(c) -> dict:
    return {
        "chunk_id": c.chunk_id,
        "document_id": str(c.document_id),
        "document": c.document_title,
        "score": round(c.score, 4),
        "similarity": None if c.similarity is None else round(c.similarity, 4),
    }


def _extractive_draft(client, asked: list[_Asked], language: str, best: float) -> Draft:
    """Offline: one extractive answer per confident question, merged into one message."""
    answers, citations, candidate, entries = [], [], "", set()
    unanswered = False
    for item in asked:
        top = item.assessment.best
        if top is None:
            unanswered = True
            continue
        result = answerer.extractive_answer(
            item.text,
            [{"text": top.text, "metadata": top.metadata, "score": item.assessment.confidence}],
            min_score=0.0,
            language=language,
        )
        candidate = candidate or result.text
        if item.assessment.confidence < client.confidence_threshold:
            unanswered = True
            continue
        if top.key in entries:
            continue
        entries.add(top.key)
        answers.append(result.text)
        citations.append(_citation(top.ref))
    if not answers:
        return Draft(
            _fallback(client, language),
            outcome="fallback",
            model="extractive",
            confidence=best,
            candidate=candidate,
            # The text offers a person; the buttons let a tap answer it.
            buttons=offers.handoff_offer_buttons(language),
        )
    text = "\n\n".join(answers)
    if unanswered and len(asked) > 1:
        text = f"{text}\n\n{_fallback(client, language)}"
    return Draft(
        text,
        outcome="answered",
        citations=citations,
        model="extractive",
        confidence=best,
        candidate=text,
    )


def _handoff_ack(language: str) -> str:
    return answerer.handoff_message(language)


def _fallback(client, language: str) -> str:
    return client.fallback_message or answerer.fallback_message(language)


def _confidence_streak(conversation: Conversation, low: bool) -> int:
    if low:
        Conversation.objects.filter(pk=conversation.pk).update(
            low_confidence_streak=F("low_confidence_streak") + 1
        )
        return conversation.low_confidence_streak + 1
    if conversation.low_confidence_streak:
        Conversation.objects.filter(pk=conversation.pk).update(low_confidence_streak=0)
    return 0


def _within_daily_limit(client) -> bool:
    from tenants.models import DailyUsage

    usage = DailyUsage.objects.filter(client_id=client.pk, day=timezone.localdate()).first()
    return usage is None or usage.messages_out < client.messages_per_day


def _context(conversation: Conversation, exclude: list) -> list[dict]:
    """The last N messages of the conversation, cached in Redis until a message is added."""
    key = services.context_cache_key(conversation.pk)
    cached = cache.get(key)
    if cached is None:
        rows = (
            Message.objects.filter(conversation=conversation)
            .exclude(status__in=[Message.Status.NOT_SENT, Message.Status.FAILED])
            .order_by("-created_at")
            .values("id", "author", "text", "transcript")[: settings.CONTEXT_MESSAGES + 10]
        )
        cached = [
            {
                "id": r["id"],
                "role": "user" if r["author"] == Message.Author.CUSTOMER else "assistant",
                "content": r["text"] or r["transcript"],
            }
            for r in reversed(list(rows))
            if r["text"] or r["transcript"]
        ]
        cache.set(key, cached, settings.CONTEXT_CACHE_SECONDS)
    excluded = set(exclude)
    kept = [m for m in cached if m["id"] not in excluded][-settings.CONTEXT_MESSAGES :]
    return [{"role": m["role"], "content": m["content"]} for m in kept]


def _store_and_send(
    client, conversation, pending, draft: Draft, started: float, *, send=True
) -> str:
    from conversations.tasks import message_mark_read_task, message_send_task
    from tenants.services import usage_add

    with transaction.atomic():
        current = Conversation.objects.select_for_update().get(pk=conversation.pk)
        still_bot = current.mode == Conversation.Mode.BOT
        reply = services.message_store_outbound(
            conversation=current,
            author=Message.Author.BOT,
            text=draft.text,
            status=Message.Status.QUEUED if still_bot else Message.Status.NOT_SENT,
            in_reply_to=pending,
            citations=draft.citations,
            model=draft.model,
            prompt_tokens=draft.prompt_tokens,
            completion_tokens=draft.completion_tokens,
            latency_ms=int((time.monotonic() - started) * 1000),
            reply_to_external_id=pending[-1].external_id or "",
            buttons=draft.buttons,
        )
        Message.objects.filter(pk__in=[m.pk for m in pending]).update(
            status=Message.Status.ANSWERED if still_bot else Message.Status.STORED,
            updated_at=timezone.now(),
        )
        if not still_bot:
            logger.info("a person took over while the bot was thinking: draft not sent")
            metrics.REPLIES.labels(outcome="superseded").inc()
            return "superseded"
        if draft.outcome == "handoff":
            handoff.conversation_handoff(
                conversation=current,
                reason=draft.handoff_reason,
                actor="bot",
                notify_data={"message_id": pending[-1].pk},  # its text is read at delivery
            )
        usage_add(
            client_id=client.pk,
            messages_out=1,
            bot_answers=1 if draft.outcome == "answered" else 0,
            prompt_tokens=draft.prompt_tokens or 0,
            completion_tokens=draft.completion_tokens or 0,
        )
        if send:
            transaction.on_commit(lambda: message_send_task.delay(reply.pk))
            if conversation.channel == "whatsapp" and pending[-1].external_id:
                # Blue ticks on the customer's side: their messages were read and answered.
                last_inbound = pending[-1].pk
                transaction.on_commit(lambda: message_mark_read_task.delay(last_inbound))
    metrics.REPLIES.labels(outcome=draft.outcome).inc()
    first = min(m.created_at for m in pending)
    waited = (timezone.now() - first).total_seconds()
    metrics.REPLY_LATENCY.observe(waited)
    logger.info(
        "reply queued",
        extra={
            "outcome": draft.outcome,
            "reply": str(reply.pk),
            "answered": len(pending),
            "chunks": len(draft.citations),
            # One line per answered message with what an operator filters and sums on.
            "channel": conversation.channel,
            "latency_ms": int(waited * 1000),
            "model": draft.model,
            "prompt_tokens": draft.prompt_tokens,
            "completion_tokens": draft.completion_tokens,
        },
    )
    return draft.outcome
