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

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from conversations import handoff, media, offers, services
from conversations.models import Conversation, Message
from wafaa import ai_config, metrics, otel
from wafaa.ai import AIServiceError, answerer, confidence
from wafaa.ai.llm import (
    LLMEmptyResponseError,
    LLMError,
    LLMTransientError,
    build_grounded_messages,
    strip_handoff_marker,
)
from wafaa.db import connection_released
from wafaa.redis import get_redis
from wafaa.text import STOPWORDS, split_sentences, storable, words

logger = logging.getLogger(__name__)

OPEN_STATUSES = (Message.Status.RECEIVED, Message.Status.PROCESSING)
MAX_REPLY_CHARS = 3000
_LETTERS = re.compile(r"\w", re.UNICODE)


class ReplyRetryableError(Exception):
    """The LLM failed transiently; Celery retries the task with backoff. `rate_limited`:
    the provider answered 429 for this client's key (pause the client, not everyone), and
    `retry_after` is the wait it asked for, if it said."""

    def __init__(self, message: str, *, rate_limited: bool = False, retry_after=None):
        super().__init__(message)
        self.rate_limited = rate_limited
        self.retry_after = retry_after


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
    # The conversation's low-confidence streak once this reply is stored (None: unchanged).
    confidence_streak: int | None = None
    confidence: float | None = None  # how sure we are of the best entry (wafaa.ai.confidence)
    candidate: str = ""  # offline: the answer a lower threshold would have given
    buttons: list[dict] = field(default_factory=list)  # reply buttons sent with the text
    # Per question of the burst: the entries weighed and the features of the decision (for
    # the evaluation's error analysis; never stored).
    assessed: list[dict] = field(default_factory=list)


def _client():
    return connection.tenant


def reply_for_inbound(
    *, message_id, final_attempt: bool = False, send: bool = True, owner: str | None = None
) -> str:
    """Answer the open inbound messages of `message_id`'s conversation, once.

    `owner` (the task id) owns the conversation's lock: a redelivered copy of a task that was
    killed while holding it takes it over at once instead of waiting as "busy" for it to
    expire (the killed run cannot release it). A live run is never taken over this way: the
    broker redelivers a task only after its visibility timeout, longer than the hard time
    limit that ends any run (settings: CELERY_BROKER_TRANSPORT_OPTIONS)."""
    message = Message.objects.filter(pk=message_id).select_related("conversation").first()
    if message is None:
        logger.warning("inbound message not found (deleted?)", extra={"message_id": message_id})
        return "missing"
    if message.status not in OPEN_STATUSES:
        return "already_handled"
    redis = get_redis()
    name = f"wafaa:conversation:{connection.schema_name}:{message.conversation_id}"
    lock = redis.lock(name, timeout=settings.CELERY_TASK_TIME_LIMIT, blocking_timeout=5)
    token = owner or None
    if not lock.acquire(token=token):
        if not (owner and redis.get(name) == owner):
            raise ConversationBusyError(f"conversation {message.conversation_id} is busy")
        # Our own lock, left by this task's killed delivery: keep it (and renew its time).
        lock.local.token = owner.encode()
        lock.extend(settings.CELERY_TASK_TIME_LIMIT, replace_ttl=True)
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
    attempts = max(m.attempts for m in pending)
    if attempts >= settings.REPLY_MAX_ATTEMPTS:
        return inbound_park(conversation=conversation, messages=pending)
    # Counted (and committed) before the work: a run that dies or is killed still counts.
    Message.objects.filter(pk__in=[m.pk for m in pending]).update(
        status=Message.Status.PROCESSING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if send and any(m.status == Message.Status.RECEIVED for m in pending):
        # Read, and someone typing, while the reply is made (not again on a retry). Its own
        # task: the reply does not wait for Meta's answer to it.
        from conversations.tasks import message_typing_task

        message_typing_task.delay(pending[-1].pk)
    # The last attempt allowed answers with the fallback rather than fail once more.
    final_attempt = final_attempt or attempts + 1 >= settings.REPLY_MAX_ATTEMPTS
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
    # Written with the stored reply only (_store_and_send): an attempt that fails and is
    # retried must not count twice toward the streak.
    streak = conversation.low_confidence_streak + 1 if conversation and low_confidence else 0
    if low_confidence and streak >= 2:
        return Draft(
            _handoff_ack(language),
            outcome="handoff",
            citations=citations,
            handoff_reason="low_confidence",
            confidence=best,
            confidence_streak=streak,
        )
    draft = _generate(
        client=client,
        question=question,
        language=language,
        context=context,
        final_attempt=final_attempt,
        images=images,
        asked=asked,
        chunks=chunks,
        citations=citations,
        best=best,
    )
    if conversation is not None:
        draft.confidence_streak = streak
    draft.assessed = [_explain(a) for a in asked]
    return draft


def _explain(asked: _Asked, top: int = 4) -> dict:
    """What the decision for one question was made of: its features and best entries."""
    assessment = asked.assessment
    return {
        "question": asked.text,
        "confidence": round(assessment.confidence, 4),
        "features": {k: round(v, 4) for k, v in assessment.features.items()},
        "entries": [
            {
                "key": s.candidate.key,
                "text": s.candidate.text[:160],
                "answers": list((s.candidate.metadata.get("answers") or {}).values()),
                "similarity": round(s.similarity, 4),
                "overlap": round(s.overlap, 4),
                "keyword": round(s.keyword, 4),
                "score": round(s.score, 4),
            }
            for s in assessment.ranked[:top]
        ],
    }


def _generate(
    *, client, question, language, context, final_attempt, images, asked, chunks, citations, best
) -> Draft:
    """The answer itself: the extractive answerer offline, else the LLM."""
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
        # No database connection is held while the model thinks (or times out).
        with (
            metrics.LLM_LATENCY.labels(model=model).time(),
            otel.stage("llm", model=model),
            connection_released(),
        ):
            result = chat.complete(messages)
    except LLMTransientError as exc:
        metrics.LLM_CALLS.labels(model=model, result="transient_error").inc()
        if not final_attempt:
            raise ReplyRetryableError(
                str(exc), rate_limited=exc.status_code == 429, retry_after=exc.retry_after
            ) from None
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
    # A NUL (or another unstorable character) from the model would fail every attempt.
    text = storable(text).strip()
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

    embedder = ai_config.get_query_embedder()
    # The question as asked and, when it holds dialect or Arabizi words, in standard words
    # ("فين" -> "اين", "se3r" -> "سعر"): each variant is searched, the candidates merged.
    queries = [confidence.expand_query(v) for v in confidence.query_variants(text)]
    vectors = None
    if embedder.dimensions == settings.EMBEDDING_DIMENSIONS:  # else: keyword search only
        vectors = _embed_now(embedder, queries)  # one call for the variants
    chunks, seen = [], {}
    with otel.stage("retrieve"):
        for index, query in enumerate(queries):
            vector = None if vectors is None else vectors[index].tolist()
            for chunk in retrieve(query, k=RETRIEVE_K, embedder=embedder, query_vector=vector):
                if chunk.chunk_id not in seen:
                    seen[chunk.chunk_id] = len(chunks)
                    chunks.append(chunk)
                elif (chunk.similarity or -1.0) > (chunks[seen[chunk.chunk_id]].similarity or -1.0):
                    chunks[seen[chunk.chunk_id]] = chunk
    similar = {}
    if vectors is not None:
        similar = _question_similarities(embedder, vectors, chunks)

    def word_vectors(question_words: list[str], entry_words: list[str]) -> dict:
        """The question's words embedded now (never cached), the entry's from the cache.
        Offline embedders only: a model API would bill a call per question for them."""
        if vectors is None or embedder.name.startswith("openai:"):
            return {}
        asked = _embed_now(embedder, question_words)
        known = _knowledge_vectors(embedder, entry_words)
        if asked is None or known is None:
            return {}
        return {
            **dict(zip(entry_words, known, strict=True)),
            **dict(zip(question_words, asked, strict=True)),
        }

    candidates = [
        confidence.Candidate(
            text=c.text,
            metadata=c.metadata,
            similarity=c.similarity,
            keyword=c.keyword_rank,
            key=f"{c.document_id}:{c.metadata.get('entry', c.chunk_id)}",
            ref=c,
            question_similarity=similar.get(c.chunk_id),
        )
        for c in chunks
    ]
    assessment = confidence.assess(
        text, candidates, language=language, word_vectors=word_vectors, model=embedder.name
    )
    return _Asked(text, assessment, chunks)


def _embed_now(embedder, texts: list[str]):
    """Unit vectors of `texts` (a customer's words: never cached), or None when embedding
    fails (retrieval then embeds, or falls back to its keyword leg, itself)."""
    from knowledge.services import embed_texts

    try:
        matrix = np.asarray(embed_texts(embedder, texts), dtype=np.float32)
    except AIServiceError as exc:
        logger.warning("question embedding failed", extra={"error": str(exc)})
        return None
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _question_similarities(embedder, asked, chunks: list) -> dict:
    """Cosine similarity of the customer's question (best of its variants) to each FAQ
    chunk's own question: a paraphrase or translation of a FAQ question is closer to it than
    to its question and answer together."""
    questions = {
        c.chunk_id: c.metadata["question"]
        for c in chunks
        if c.metadata.get("kind") == "faq" and c.metadata.get("question")
    }
    texts = list(dict.fromkeys(questions.values()))
    cached = _knowledge_vectors(embedder, texts) if texts else None
    if cached is None:
        return {}
    vectors = dict(zip(texts, cached, strict=True))
    return {
        cid: float(max(float(np.dot(q, vectors[question])) for q in asked))
        for cid, question in questions.items()
    }


# Vectors of knowledge-side texts (FAQ questions, words of entries), per process: a FAQ's
# questions and words recur in every question asked of it. Float32, at most ~10 MB.
_VECTOR_CACHE: dict[tuple[str, str], np.ndarray] = {}
_VECTOR_CACHE_MAX = 5_000


def _knowledge_vectors(embedder, texts: list[str]) -> list | None:
    missing = [t for t in dict.fromkeys(texts) if (embedder.name, t) not in _VECTOR_CACHE]
    if missing:
        vectors = _embed_now(embedder, missing)
        if vectors is None:
            return None
        if len(_VECTOR_CACHE) + len(missing) > _VECTOR_CACHE_MAX:
            _VECTOR_CACHE.clear()
        for text, vector in zip(missing, vectors, strict=True):
            _VECTOR_CACHE[(embedder.name, text)] = vector
    return [_VECTOR_CACHE[(embedder.name, t)] for t in texts]


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


def inbound_park(*, conversation: Conversation, messages: list[Message], reason: str = "") -> str:
    """Stop answering these inbound messages automatically: their reply failed
    REPLY_MAX_ATTEMPTS times. Parked visibly (status, reason, metric, the client's callback),
    for a person to look at or retry from the admin."""
    reason = reason or next((m.failure_reason for m in messages if m.failure_reason), "")
    reason = reason or "attempts_exhausted"
    Message.objects.filter(pk__in=[m.pk for m in messages], status__in=OPEN_STATUSES).update(
        status=Message.Status.PARKED, failure_reason=reason[:64], updated_at=timezone.now()
    )
    metrics.REPLIES_PARKED.labels(reason=reason[:64]).inc()
    logger.error(
        "inbound messages parked: their reply kept failing",
        extra={"message_ids": [str(m.pk) for m in messages], "reason": reason},
    )
    from conversations import notifications

    notifications.notify(
        conversation=conversation,
        event="reply_parked",
        data={"message_ids": [m.pk for m in messages], "reason": reason},
    )
    return "parked"


def inbound_attempt_failed(*, message_id, error: BaseException) -> None:
    """Record why an attempt failed (the kind of error only: texts may hold customer data),
    so a message parked later says why. Best effort."""
    try:
        Message.objects.filter(pk=message_id).update(failure_reason=type(error).__name__[:64])
    except Exception:  # the database may be what failed
        logger.warning("could not record a failed attempt", extra={"message_id": message_id})


def inbound_retry_scheduled(*, message_id) -> None:
    """A run of this message's conversation failed and will be retried: its messages in
    `processing` are touched, so the sweeper knows their task is alive. Best effort."""
    try:
        conversation_id = (
            Message.objects.filter(pk=message_id).values_list("conversation_id", flat=True).first()
        )
        Message.objects.filter(
            conversation_id=conversation_id, status=Message.Status.PROCESSING
        ).update(updated_at=timezone.now())
    except Exception:  # the database may be what failed; the sweeper then re-enqueues
        logger.warning("could not touch messages before a retry", extra={"message_id": message_id})


def inbound_retry_parked(*, message_ids) -> int:
    """A person asks for parked messages to be answered again: a fresh set of attempts."""
    from conversations.tasks import handle_inbound_task

    ids = list(
        Message.objects.filter(pk__in=message_ids, status=Message.Status.PARKED).values_list(
            "pk", flat=True
        )
    )
    Message.objects.filter(pk__in=ids).update(
        status=Message.Status.RECEIVED, attempts=0, failure_reason="", updated_at=timezone.now()
    )
    for message_id in ids:
        transaction.on_commit(lambda message_id=message_id: handle_inbound_task.delay(message_id))
    return len(ids)


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
    from conversations.tasks import message_send_task
    from tenants.services import usage_add

    with transaction.atomic():
        current = Conversation.objects.select_for_update().get(pk=conversation.pk)
        still_bot = current.mode == Conversation.Mode.BOT
        if draft.confidence_streak is not None:
            Conversation.objects.filter(pk=current.pk).update(
                low_confidence_streak=draft.confidence_streak
            )
            current.low_confidence_streak = draft.confidence_streak
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
