"""The reply path's question embedder: the same model as ingestion's, its own short timeout,
no SDK retries (the reply task owns retries; a customer is waiting)."""

from __future__ import annotations

import pytest

from wafaa import ai_config
from wafaa.ai.embeddings import EmbeddingError


@pytest.fixture
def openai_embeddings(settings, fake_llm):
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = fake_llm.url
    settings.EMBEDDING_BACKEND = "openai"
    settings.EMBEDDING_TIMEOUT = 5
    settings.EMBEDDING_QUERY_TIMEOUT = 0.5
    ai_config.reset_clients()
    yield fake_llm
    ai_config.reset_clients()


def test_a_failing_query_embedding_is_asked_once_while_ingestion_retries(openai_embeddings):
    fake = openai_embeddings
    query_embedder, ingest_embedder = ai_config.get_query_embedder(), ai_config.get_embedder()
    assert query_embedder.name == ingest_embedder.name  # same model: the vectors compare
    fake.fail_next(500, times=10, endpoint="embeddings")
    with pytest.raises(EmbeddingError):
        query_embedder.embed_query("opening hours?")
    assert len(fake.embedding_calls) == 1  # no SDK retries on the reply path
    with pytest.raises(EmbeddingError):
        ingest_embedder.embed_query("opening hours?")
    assert len(fake.embedding_calls) == 1 + 3  # ingestion: the SDK's two retries


def test_a_slow_query_embedding_gives_up_at_its_own_timeout(openai_embeddings):
    fake = openai_embeddings
    fake.hang_next(3, endpoint="embeddings")
    with pytest.raises(EmbeddingError) as raised:
        ai_config.get_query_embedder().embed_query("opening hours?")
    assert raised.value.transient  # a timeout: worth retrying later
    assert len(fake.embedding_calls) == 1


def test_offline_the_query_embedder_is_the_shared_model(settings):
    settings.OPENAI_API_KEY = ""
    settings.EMBEDDING_BACKEND = "hashing"
    ai_config.reset_clients()
    try:
        assert ai_config.get_query_embedder() is ai_config.get_embedder()
    finally:
        ai_config.reset_clients()
