"""Knowledge services: upload checks, ingestion (batching, retries, failures), reindex, delete.

Real PostgreSQL (pgvector) in tenant A's schema, the hashing embedder, and the fake OpenAI
server (a real HTTP server) where the embedding service's behaviour matters.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from django.db import connection

from knowledge import services, tasks
from knowledge.models import Chunk, Document
from wafaa import ai_config
from wafaa.ai.embeddings import EmbeddingTransientError, HashingEmbedder, OpenAIEmbedder

FIXTURES = Path(__file__).parent / "fixtures"


def faq_csv(rows: int) -> bytes:
    lines = ["question,answer"]
    lines += [f"What is the price of item {i}?,Item {i} costs {10 + i} MAD." for i in range(rows)]
    return "\n".join(lines).encode()


def upload(client, content: bytes, filename: str = "faq.csv", **kwargs) -> Document:
    return services.document_upload(
        client=client, content=content, filename=filename, enqueue=False, **kwargs
    ).document


def openai_embedder(fake) -> OpenAIEmbedder:
    # No SDK retries: each scripted failure reaches our code as one failed call.
    return OpenAIEmbedder(api_key="test-key", base_url=fake.url, max_retries=0)


@pytest.fixture
def openai_backend(settings, fake_llm):
    """get_embedder() builds an OpenAIEmbedder pointed at the fake server."""
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = fake_llm.url
    settings.EMBEDDING_BACKEND = "openai"
    ai_config.reset_clients()
    yield fake_llm
    ai_config.reset_clients()


# ---- upload ----------------------------------------------------------------------------------


def test_upload_stores_the_original_bytes_as_a_pending_document(in_tenant_a):
    data = (FIXTURES / "guide.md").read_bytes()
    result = services.document_upload(
        client=in_tenant_a, content=data, filename="guide.md", enqueue=False
    )
    document = Document.objects.get(pk=result.document.pk)
    assert result.created
    assert document.status == Document.Status.PENDING
    assert bytes(document.content) == data
    assert document.kind == "md"
    assert document.title == "guide"  # a first guess, until ingestion reads the document
    assert document.title_auto
    assert document.size_bytes == len(data)
    assert not Chunk.objects.exists()

    services.document_ingest(document=document)
    document.refresh_from_db()
    assert document.title == "Help centre"  # from the document's own heading
    assert document.language == "en"


def test_upload_enqueues_ingestion_after_commit_in_the_client_schema(
    in_tenant_a, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = services.document_upload(
            client=in_tenant_a, content=faq_csv(3), filename="faq.csv"
        )
    assert len(callbacks) == 1
    connection.set_tenant(in_tenant_a)  # the eager task restored the schema it came from
    document = Document.objects.get(pk=result.document.pk)
    assert document.status == Document.Status.READY
    assert document.chunks_total == document.chunks_done == 3


def test_same_content_twice_returns_the_first_document(in_tenant_a):
    first = services.document_upload(client=in_tenant_a, content=faq_csv(2), enqueue=False)
    second = services.document_upload(
        client=in_tenant_a, content=faq_csv(2), filename="copy.csv", enqueue=False
    )
    assert not second.created
    assert second.document.pk == first.document.pk
    assert Document.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("garbage.txt", "not_text"),
        ("renamed_zip.docx", "invalid_docx"),
        ("bad_columns.csv", "csv_missing_columns"),
    ],
)
def test_unreadable_files_are_refused_with_the_extraction_code(in_tenant_a, name, code):
    with pytest.raises(services.DocumentInvalidError) as caught:
        upload(in_tenant_a, (FIXTURES / name).read_bytes(), name)
    assert caught.value.code == code
    assert caught.value.status_code == 400
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("scanned.pdf", "pdf_no_text", "no text layer"),
        ("encrypted.pdf", "pdf_encrypted", "password"),
    ],
)
def test_pdfs_that_need_opening_to_judge_fail_in_ingestion_with_their_code(
    in_tenant_a, name, code, words
):
    # Opening a PDF is parsing: the web request only checks its magic bytes.
    from wafaa import metrics

    failures = metrics.DOCUMENTS_FAILED.labels(reason=code)
    before = failures._value.get()
    document = upload(in_tenant_a, (FIXTURES / name).read_bytes(), name)
    assert services.document_ingest(document=document) == "failed"
    assert failures._value.get() == before + 1  # alert WafaaIngestionFailures reads it
    document.refresh_from_db()
    assert document.status == Document.Status.FAILED
    assert document.error_code == code
    assert words in document.error
    assert not Chunk.objects.filter(document=document).exists()


def test_file_over_the_plan_limit_is_refused_before_anything_is_stored(in_tenant_a):
    in_tenant_a.max_upload_bytes = 1000
    with pytest.raises(services.DocumentTooLargeError) as caught:
        upload(in_tenant_a, b"x " * 600, "big.txt")
    assert caught.value.status_code == 413
    assert caught.value.details["max_upload_bytes"] == 1000
    assert not Document.objects.exists()


def test_plan_document_limit_refuses_a_new_document_but_not_a_duplicate(in_tenant_a):
    in_tenant_a.max_documents = 1
    upload(in_tenant_a, faq_csv(1))
    with pytest.raises(services.DocumentLimitError) as caught:
        upload(in_tenant_a, faq_csv(2))
    assert caught.value.code == "plan_limit"
    assert caught.value.status_code == 403
    # Sending the stored file again is not a new document: it is answered, not refused.
    assert upload(in_tenant_a, faq_csv(1)).pk
    assert Document.objects.count() == 1


# ---- ingestion -------------------------------------------------------------------------------


def test_ingest_stores_chunks_with_vectors_text_search_and_embedder(in_tenant_a):
    document = upload(in_tenant_a, (FIXTURES / "faq.txt").read_bytes(), "faq.txt")
    embedder = HashingEmbedder(dimensions=512)
    assert services.document_ingest(document=document, embedder=embedder) == "ready"

    document.refresh_from_db()
    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert document.status == Document.Status.READY
    assert document.embedder == embedder.name and document.dimensions == 512
    assert document.chunks_total == document.chunks_done == len(chunks) >= 3
    assert all(c.embedder == embedder.name and len(c.embedding) == 512 for c in chunks)
    faq = [c for c in chunks if c.metadata.get("kind") == "faq"]
    assert faq[0].metadata["question"] == "How long does delivery take?"
    # search_vector was filled with the 'simple' configuration (no stemming, no stopwords).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM knowledge_chunk WHERE document_id = %s "
            "AND search_vector @@ to_tsquery('simple', 'delivery & in')",
            [document.pk],
        )
        assert cursor.fetchone()[0] >= 1


def test_embedding_calls_are_one_per_batch(in_tenant_a, fake_llm, settings):
    settings.EMBEDDING_BATCH_SIZE = 4
    document = upload(in_tenant_a, faq_csv(10))
    outcome = services.document_ingest(document=document, embedder=openai_embedder(fake_llm))

    assert outcome == "ready"
    calls = fake_llm.embedding_calls
    assert len(calls) == math.ceil(10 / 4)
    assert [len(call["input"]) for call in calls] == [4, 4, 2]
    assert Chunk.objects.filter(document=document).count() == 10


def test_transient_embedding_error_leaves_the_document_waiting_with_a_note(in_tenant_a, fake_llm):
    document = upload(in_tenant_a, faq_csv(3))
    fake_llm.fail_next(503, endpoint="embeddings")
    with pytest.raises(EmbeddingTransientError):
        services.document_ingest(document=document, embedder=openai_embedder(fake_llm))

    document.refresh_from_db()
    assert document.status == Document.Status.PENDING
    assert "retrying automatically" in document.error
    assert not Chunk.objects.filter(document=document).exists()
    # The next attempt (the task's retry) finishes it.
    assert services.document_ingest(document=document, embedder=openai_embedder(fake_llm)) == (
        "ready"
    )
    document.refresh_from_db()
    assert document.status == Document.Status.READY and document.error == ""


def test_task_retries_on_429_and_500_then_succeeds(in_tenant_a, openai_backend):
    document = upload(in_tenant_a, faq_csv(2))
    # The SDK tries 3 times per call: the first task attempt fails (429, 500, 429), the
    # task's own retry gets a 500 and then a vector.
    for status in (429, 500, 429, 500):
        openai_backend.fail_next(status, endpoint="embeddings")
    # apply() runs the task here, retries included (without waiting for the countdown).
    result = tasks.document_ingest_task.apply((str(document.pk),), throw=False)

    assert result.get() == "ready"
    document.refresh_from_db()
    assert document.status == Document.Status.READY
    assert len(openai_backend.embedding_calls) == 5
    assert document.embedder == "openai:text-embedding-3-small"


def test_transient_errors_on_the_final_attempt_fail_the_document(in_tenant_a, fake_llm):
    document = upload(in_tenant_a, faq_csv(2))
    fake_llm.fail_next(429, endpoint="embeddings")
    outcome = services.document_ingest(
        document=document, embedder=openai_embedder(fake_llm), final_attempt=True
    )
    document.refresh_from_db()
    assert outcome == "failed"
    assert document.status == Document.Status.FAILED
    assert "reindex the document" in document.error


def test_permanent_401_fails_the_document_with_an_actionable_message(in_tenant_a, fake_llm):
    document = upload(in_tenant_a, faq_csv(2))
    fake_llm.fail_next(401, endpoint="embeddings")
    outcome = services.document_ingest(document=document, embedder=openai_embedder(fake_llm))

    document.refresh_from_db()
    assert outcome == "failed"
    assert document.status == Document.Status.FAILED
    assert "Fix the embedding configuration" in document.error
    assert "test-key" not in document.error
    assert not Chunk.objects.filter(document=document).exists()


def test_retry_countdown_grows_and_stays_below_the_visibility_timeout(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}
    countdowns = [tasks.retry_countdown(n) for n in range(12)]
    assert 2.5 <= countdowns[0] <= 5
    assert max(countdowns) <= 48
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    assert 300 <= tasks.retry_countdown(20) <= 600


def test_a_rerun_of_a_ready_document_does_nothing(in_tenant_a):
    document = upload(in_tenant_a, faq_csv(3))
    services.document_ingest(document=document)
    ids = set(Chunk.objects.values_list("pk", flat=True))
    assert services.document_ingest(document=document) == "skipped"
    assert set(Chunk.objects.values_list("pk", flat=True)) == ids


def test_a_live_run_makes_a_duplicate_back_off_and_a_dead_one_is_taken_over(in_tenant_a):
    document = upload(in_tenant_a, faq_csv(3))
    Document.objects.filter(pk=document.pk).update(status=Document.Status.PROCESSING)
    with pytest.raises(services.DocumentBusyError):
        services.document_ingest(document=document)

    # No progress for longer than the lease: the run's worker is presumed dead.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_document SET updated_at = now() - interval '1 hour' WHERE id = %s",
            [document.pk],
        )
    assert services.document_ingest(document=document) == "ready"


# ---- reindex and delete ----------------------------------------------------------------------


def test_reindex_replaces_the_chunks_in_one_swap(in_tenant_a, settings):
    document = upload(in_tenant_a, faq_csv(4))
    services.document_ingest(document=document)
    old_ids = set(Chunk.objects.filter(document=document).values_list("pk", flat=True))

    settings.KNOWLEDGE_CHUNK_TOKENS = 300  # the new index may differ from the old one
    document = services.document_reindex(document=document, enqueue=False)
    assert document.status == Document.Status.PENDING
    # Until the new index is in, the old chunks are still there (and still answer).
    assert set(Chunk.objects.filter(document=document).values_list("pk", flat=True)) == old_ids
    assert services.retrieve("price of item 2", k=1)[0].chunk_id in old_ids

    assert services.document_ingest(document=document) == "ready"
    new_ids = set(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    assert len(new_ids) == 4
    assert not new_ids & old_ids


def test_a_run_superseded_by_a_reindex_stores_nothing(in_tenant_a, fake_llm):
    """A stale run notices the newer ingest_version at its next progress write and stops."""
    document = upload(in_tenant_a, faq_csv(3))

    class ReindexingEmbedder(HashingEmbedder):
        """Simulates a reindex request arriving while this run is embedding."""

        def _embed(self, texts):
            Document.objects.filter(pk=document.pk).update(ingest_version=99)
            return super()._embed(texts)

    outcome = services.document_ingest(document=document, embedder=ReindexingEmbedder())
    assert outcome == "superseded"
    assert not Chunk.objects.filter(document=document).exists()


def test_delete_removes_the_document_and_its_chunks(in_tenant_a):
    keep = upload(in_tenant_a, faq_csv(2))
    gone = upload(in_tenant_a, faq_csv(3))
    services.document_ingest(document=keep)
    services.document_ingest(document=gone)

    services.document_delete(document=gone)
    assert not Document.objects.filter(pk=gone.pk).exists()
    assert not Chunk.objects.filter(document_id=gone.pk).exists()
    assert Chunk.objects.filter(document=keep).count() == 2


def test_ingest_of_a_deleted_document_is_skipped(in_tenant_a):
    document = upload(in_tenant_a, faq_csv(2))
    document_id = document.pk
    services.document_delete(document=document)
    assert services.document_ingest_by_id(document_id=document_id) == "skipped"


def test_reembed_selects_documents_made_by_another_embedder(in_tenant_a):
    old = upload(in_tenant_a, faq_csv(2))
    current = upload(in_tenant_a, faq_csv(3))
    services.document_ingest(document=old, embedder=HashingEmbedder(dimensions=512))
    Document.objects.filter(pk=old.pk).update(embedder="openai:text-embedding-3-small")
    services.document_ingest(document=current)

    name = ai_config.get_embedder().name
    assert [d.pk for d in services.documents_needing_reembed(embedder_name=name)] == [old.pk]
    forced = services.documents_needing_reembed(embedder_name=name, force=True)
    assert {d.pk for d in forced} == {old.pk, current.pk}


def test_sweep_re_enqueues_only_stuck_documents(in_tenant_a, django_capture_on_commit_callbacks):
    stuck = upload(in_tenant_a, faq_csv(2))
    upload(in_tenant_a, faq_csv(3))  # fresh: its task is still on its way
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_document SET updated_at = now() - interval '1 hour' WHERE id = %s",
            [stuck.pk],
        )
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.documents_ingest_sweep() == 1
    assert len(callbacks) == 1


def test_demo_knowledge_is_added_and_indexed_once(in_tenant_a):
    from knowledge.demo_data import demo_knowledge_ensure

    assert demo_knowledge_ensure(in_tenant_a) == 2
    assert set(Document.objects.values_list("status", flat=True)) == {Document.Status.READY}
    assert services.retrieve("wifi password", k=1)[0].metadata["question"] == "Do you have wifi?"
    assert demo_knowledge_ensure(in_tenant_a) == 0
    assert Document.objects.count() == 2
