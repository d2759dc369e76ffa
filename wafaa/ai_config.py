"""Builds the AI clients (embedder, chat) from settings, once per process.

Without OPENAI_API_KEY Wafaa still runs end to end: the local multilingual embedder and the
extractive answerer stand in, and /health and the logs say so.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings

logger = logging.getLogger("wafaa.ai")


def llm_enabled() -> bool:
    return bool(settings.OPENAI_API_KEY)


def embedding_backend() -> str:
    backend = settings.EMBEDDING_BACKEND
    if backend == "auto":
        return "openai" if settings.OPENAI_API_KEY else "local"
    return backend


def mode() -> dict:
    return {
        "answerer": "llm" if llm_enabled() else "extractive (offline: OPENAI_API_KEY not set)",
        "embedder": embedding_backend(),
    }


@functools.cache
def get_embedder():
    from wafaa.ai.embeddings import build_embedder

    backend = embedding_backend()
    if backend != "openai":
        logger.info("using the %s embedder (no OpenAI embeddings)", backend)
    return build_embedder(
        backend,
        dimensions=settings.EMBEDDING_DIMENSIONS,
        openai_api_key=settings.OPENAI_API_KEY or None,
        openai_base_url=settings.OPENAI_BASE_URL,
        openai_model=settings.EMBEDDING_MODEL,
        # One HTTP call per ingestion batch: the SDK batch is never smaller than ours.
        openai_batch_size=max(256, settings.EMBEDDING_BATCH_SIZE),
        openai_timeout=settings.EMBEDDING_TIMEOUT,
    )


@functools.cache
def get_query_embedder():
    """The embedder of the reply path's question: the same model as get_embedder() (so the
    vectors compare), but with its own short timeout and no SDK retries — a customer is
    waiting, and the reply task owns the retries (a failed query embedding falls back to the
    keyword leg). Offline embedders are shared with get_embedder() (one model in memory)."""
    if embedding_backend() != "openai":
        return get_embedder()
    from wafaa.ai.embeddings import build_embedder

    return build_embedder(
        "openai",
        dimensions=settings.EMBEDDING_DIMENSIONS,
        openai_api_key=settings.OPENAI_API_KEY or None,
        openai_base_url=settings.OPENAI_BASE_URL,
        openai_model=settings.EMBEDDING_MODEL,
        openai_timeout=settings.EMBEDDING_QUERY_TIMEOUT,
        openai_max_retries=0,
    )


@functools.cache
def get_chat_client(model: str | None = None):
    """A chat client for `model` (default LLM_MODEL), cached per model; None when offline."""
    if not llm_enabled():
        logger.warning("OPENAI_API_KEY is not set: replies use the extractive answerer")
        return None
    from wafaa.ai.llm import ChatClient

    return ChatClient(
        api_key=settings.OPENAI_API_KEY,
        base_url=settings.OPENAI_BASE_URL,
        model=model or settings.LLM_MODEL,
        timeout=settings.LLM_TIMEOUT,
        max_retries=0,  # Celery owns retries, so they do not multiply
    )


@functools.cache
def get_transcriber():
    """The voice-note transcriber (TRANSCRIPTION_MODEL); None when offline."""
    if not llm_enabled():
        return None
    from wafaa.ai.speech import Transcriber

    return Transcriber(
        api_key=settings.OPENAI_API_KEY,
        base_url=settings.OPENAI_BASE_URL,
        model=settings.TRANSCRIPTION_MODEL,
        timeout=max(settings.LLM_TIMEOUT, 30.0),
    )


def reset_clients() -> None:
    """Forget the cached clients (tests and settings changes)."""
    get_embedder.cache_clear()
    get_query_embedder.cache_clear()
    get_chat_client.cache_clear()
    get_transcriber.cache_clear()
