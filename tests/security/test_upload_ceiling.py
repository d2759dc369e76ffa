"""Attack (issue 10, findings 2 and 3): the ingest worker's own defences, in this process.

A document is stored without the web's checks (as one stored before they existed), or with
caps lowered so a small file passes them, and ingested by the service the worker runs:
- a file that needs more memory than the extraction child may use fails the document with
  `extraction_memory_limit`, and this process (the worker) neither grows nor fails;
- a file that takes too long fails with `extraction_timeout`;
- the plan's chunks per document and per client fail the document with their reason;
- chunks are embedded and written batch by batch, invisible to retrieval until the end.
"""

from __future__ import annotations

import hashlib
import io

import psutil
import pytest

from knowledge import sandbox, services
from knowledge.extraction import TOO_LARGE_UNCOMPRESSED, ExtractionError, Limits, _LimitedReader
from knowledge.models import Chunk, Document
from tests.security import crafted
from wafaa.ai.embeddings import HashingEmbedder


def store(name: str, kind: str, data: bytes) -> Document:
    return Document.objects.create(
        title=name,
        source=Document.Source.UPLOAD,
        original_filename=name,
        kind=kind,
        size_bytes=len(data),
        checksum=hashlib.sha256(data).hexdigest(),
        content=data,
    )


def faq(rows: int, prefix: str = "q") -> bytes:
    lines = ["question,answer"] + [f"{prefix} {i}?,answer {i}" for i in range(rows)]
    return "\n".join(lines).encode()


def test_a_bomb_hits_the_childs_memory_ceiling_not_the_worker(in_tenant_a, settings):
    settings.KNOWLEDGE_EXTRACT_MEMORY_MB = 128
    settings.KNOWLEDGE_MAX_COMPRESSION_RATIO = 10**6  # let it past the directory check
    # One paragraph of 1.9 M runs (17 kB zipped): it cannot be freed until it ends.
    one_paragraph = crafted.DOCUMENT_OPEN + b"<w:p>" + b"<w:r/>" * 1_900_000 + b"</w:p>"
    data = crafted._docx([one_paragraph + crafted.DOCUMENT_CLOSE])
    document = store("paragraph.docx", "docx", data)
    worker = psutil.Process()
    rss_before = worker.memory_info().rss

    assert services.document_ingest(document=document) == "failed"

    document.refresh_from_db()
    assert document.error_code == "extraction_memory_limit"
    assert "more than 128 MB of memory" in document.error
    assert not Chunk.objects.filter(document=document).exists()
    assert worker.memory_info().rss - rss_before < 100 * 1024 * 1024
    # The same process ingests the next document.
    assert services.document_ingest(document=store("faq.csv", "csv", faq(3))) == "ready"


def test_an_extraction_that_takes_too_long_is_stopped(in_tenant_a, settings):
    settings.KNOWLEDGE_EXTRACT_TIMEOUT_SECONDS = 1
    # /Count says 1; the tree holds 100,000 pages, which pypdf must walk to count.
    document = store("slow.pdf", "pdf", crafted.pdf_many_pages(100_000, declared=1))

    assert services.document_ingest(document=document) == "failed"

    document.refresh_from_db()
    assert document.error_code == "extraction_timeout"
    assert "longer than 1 s" in document.error


def test_the_plans_chunks_per_document_fail_a_long_document(in_tenant_a):
    in_tenant_a.max_chunks_per_document = 3
    text = "\n\n".join(f"Section {i}. " + "word " * 600 for i in range(10)).encode()
    document = store("long.txt", "txt", text)

    assert services.document_ingest(document=document, client=in_tenant_a) == "failed"

    document.refresh_from_db()
    assert document.error_code == "too_many_chunks"
    assert "more than 3 chunks" in document.error
    assert not Chunk.objects.exists()


def test_the_plans_chunks_per_client_fail_the_document_that_would_pass_them(in_tenant_a):
    in_tenant_a.max_chunks = 5
    first = store("first.csv", "csv", faq(3, "first"))
    assert services.document_ingest(document=first, client=in_tenant_a) == "ready"
    second = store("second.csv", "csv", faq(3, "second"))

    assert services.document_ingest(document=second, client=in_tenant_a) == "failed"

    second.refresh_from_db()
    assert second.error_code == "client_chunk_limit"
    assert "5 chunks in all" in second.error
    assert Chunk.objects.count() == 3  # the first document's index is untouched


def test_chunks_are_written_batch_by_batch_and_invisible_until_the_end(in_tenant_a, settings):
    settings.EMBEDDING_BATCH_SIZE = 2
    document = store("faq.csv", "csv", faq(6))
    seen = []

    class WatchingEmbedder(HashingEmbedder):
        def embed_documents(self, texts):
            # Before embedding each batch: what is stored, and what retrieval finds.
            seen.append((Chunk.objects.count(), len(services.retrieve("q 1", k=5))))
            return super().embed_documents(texts)

    assert services.document_ingest(document=document, embedder=WatchingEmbedder()) == "ready"

    assert seen == [(0, 0), (2, 0), (4, 0)]
    assert Chunk.objects.count() == 6
    assert services.retrieve("q 1", k=1)[0].document_id == str(document.pk)


def test_inflated_bytes_are_counted_whatever_the_header_says():
    budget = [1000]
    reader = _LimitedReader(io.BytesIO(b"x" * 5000), budget, Limits(max_uncompressed_bytes=1000))
    assert len(reader.read(600)) == 600
    with pytest.raises(ExtractionError) as caught:
        reader.read(600)
    assert caught.value.code == TOO_LARGE_UNCOMPRESSED


def test_the_extraction_child_gets_no_secret_of_the_worker(monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "SECRET_KEY"):
        monkeypatch.setenv(name, "secret-value-of-the-worker")
    env = sandbox.child_environment()
    assert "secret-value-of-the-worker" not in env.values()
    assert env["PYTHONPATH"] and env["OPENBLAS_NUM_THREADS"] == "1"
