"""Knowledge: upload, ingestion (extract → chunk → embed → store), reindex, delete, retrieval.

All functions run in the current client's schema (`assert_client_schema`).

Upload checks a file completely before storing anything (plan size limit, type by content,
text extraction), so a bad file is a 4xx with an actionable message and leaves no row. The
same bytes twice give back the first document. Ingestion then runs in a Celery task.

Ingestion is safe to run twice, concurrently, or after a crash:
- a run *claims* the document (status `processing`, a new `ingest_version`) in a short
  transaction; another run that finds a live claim (progress written within
  INGEST_LEASE_SECONDS) backs off with `DocumentBusyError`, one whose claim went stale (its
  worker died) is taken over;
- every vector is computed before anything is stored (no outside call inside a transaction),
  with a small progress UPDATE per batch that also renews the claim and notices a newer run;
- the old chunks are swapped for the new ones in one transaction, and only if the run still
  owns the latest `ingest_version`, so retrieval never sees a half-indexed document and a
  stale run never overwrites a newer one.

Retrieval is hybrid: HNSW vector search and keyword search (full text + trigram), fused with
reciprocal rank fusion (see `retrieve`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from knowledge import selectors
from knowledge.chunking import chunk_document
from knowledge.extraction import ExtractedDocument, ExtractionError, detect_kind, extract
from knowledge.models import Chunk, Document
from wafaa import metrics
from wafaa.ai.answerer import detect_language
from wafaa.ai.embeddings import (
    Embedder,
    EmbeddingError,
    EmbeddingPermanentError,
    EmbeddingTransientError,
    truncate_text,
)
from wafaa.ai_config import get_embedder
from wafaa.errors import ApplicationError, PayloadTooLargeError, PlanLimitError
from wafaa.tenancy import assert_client_schema

logger = logging.getLogger(__name__)

# A run that wrote no progress for this long is presumed dead and its claim is taken over.
# Longer than the slowest step between two progress writes: extracting a large PDF, or one
# embedding batch with the SDK's own retries (3 x EMBEDDING_TIMEOUT).
INGEST_LEASE_SECONDS = 300
RRF_K = 60
MAX_K = 50
# The query is cut before embedding and keyword matching: a pasted page is not a question,
# and the embedder and the OR-query would only get slower.
MAX_QUERY_CHARS = 1000


class DocumentInvalidError(ApplicationError):
    """The upload cannot be used as knowledge; `code` says why (extraction's codes)."""

    code = "document_invalid"
    status_code = 400


class DocumentTooLargeError(PayloadTooLargeError):
    pass


class DocumentLimitError(PlanLimitError):
    pass


class DocumentBusyError(Exception):
    """Another live run is ingesting this document; try again later."""


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    document_id: str
    document_title: str
    text: str
    metadata: dict
    score: float  # reciprocal rank fusion score
    similarity: float | None  # cosine similarity of the vector hit; None: keyword hit only
    keyword_rank: float | None  # keyword score (0..1); None: vector hit only


@dataclass
class UploadResult:
    document: Document
    created: bool  # False: the same content was uploaded before, `document` is that one
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------------


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _validated(data: bytes, filename: str, content_type: str) -> tuple[str, ExtractedDocument]:
    try:
        kind = detect_kind(data, filename, content_type)
        # Extracting now (not only in the worker) turns a scanned PDF or a CSV without
        # answers into an immediate 400, instead of a document that fails a minute later.
        return kind, extract(data, kind)
    except ExtractionError as exc:
        raise DocumentInvalidError(
            exc.message, code=exc.code, details={"filename": filename}
        ) from None


def _title_for(title: str, extracted: ExtractedDocument, filename: str) -> str:
    candidates = [title, extracted.title or "", filename.rsplit(".", 1)[0] if filename else ""]
    candidates.append(extracted.text.split("\n", 1)[0])
    best = next((c.strip() for c in candidates if c and c.strip()), "Untitled")
    return truncate_text(" ".join(best.split()), 300)


def _check_size(client, size: int) -> None:
    if size > client.max_upload_bytes:
        raise DocumentTooLargeError(
            f"The file is {_megabytes(size)}; this plan accepts files up to "
            f"{_megabytes(client.max_upload_bytes)}. Split it into smaller files.",
            details={"size_bytes": size, "max_upload_bytes": client.max_upload_bytes},
        )


# Room for the multipart envelope (boundaries, headers, a title) around the file itself.
_MULTIPART_OVERHEAD = 64 * 1024


def document_upload_precheck(*, client, content_length: int | None) -> None:
    """Refuse an upload by its declared Content-Length before its body is read at all."""
    if (
        content_length is not None
        and content_length > client.max_upload_bytes + _MULTIPART_OVERHEAD
    ):
        _check_size(client, content_length - _MULTIPART_OVERHEAD)


def document_upload(
    *,
    client,
    content: bytes | IO[bytes],
    filename: str = "",
    content_type: str = "",
    title: str = "",
    source: str = Document.Source.UPLOAD,
    created_by_email: str = "",
    enqueue: bool = True,
) -> UploadResult:
    """Store a new document (status `pending`) and enqueue its ingestion after commit.

    Refuses, storing nothing: a file over the plan's `max_upload_bytes` (413), one that is
    not readable knowledge (400, with the extraction code), a new document over the plan's
    `max_documents` (403). The same bytes again return the existing document.
    """
    assert_client_schema()
    # A file object (an upload) is measured before it is read into memory.
    size = content.size if hasattr(content, "read") else len(content)
    _check_size(client, size)
    if hasattr(content, "read"):
        content = content.read()
    checksum = hashlib.sha256(content).hexdigest()
    existing = Document.objects.defer("content").filter(checksum=checksum).first()
    if existing is not None:
        return UploadResult(existing, created=False)

    kind, extracted = _validated(content, filename, content_type)
    with transaction.atomic():
        # One upload at a time per client, so two uploads at the plan limit cannot both
        # pass the count, and the same file sent twice at once gives one document.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                [f"knowledge-upload:{connection.schema_name}"],
            )
        existing = Document.objects.defer("content").filter(checksum=checksum).first()
        if existing is not None:
            return UploadResult(existing, created=False)
        if selectors.document_count() >= client.max_documents:
            raise DocumentLimitError(
                f"This plan allows {client.max_documents} documents and all are used. "
                "Delete documents you no longer need, or ask Wafaa support for a larger plan.",
                details={"max_documents": client.max_documents},
            )
        document = Document.objects.create(
            title=_title_for(title, extracted, filename),
            source=source,
            original_filename=filename[:300],
            content_type=content_type[:100],
            kind=kind,
            size_bytes=len(content),
            checksum=checksum,
            content=content,
            language=detect_language(extracted.text[:4000]),
            created_by_email=created_by_email[:254],
        )
        if enqueue:
            _enqueue_ingest(document)
    logger.info(
        "document uploaded",
        extra={"document_id": str(document.pk), "kind": kind, "size_bytes": len(content)},
    )
    return UploadResult(document, created=True, warnings=list(extracted.warnings))


def _enqueue_ingest(document: Document) -> None:
    from knowledge.tasks import document_ingest_task

    # The schema is bound now: on_commit may run after the request left the client's schema.
    schema = connection.schema_name
    document_id = str(document.pk)
    transaction.on_commit(
        lambda: document_ingest_task.apply_async((document_id,), headers={"_schema_name": schema})
    )


# --------------------------------------------------------------------------------------------
# Ingestion
# --------------------------------------------------------------------------------------------


def _claim(document_id) -> tuple[Document, int] | None:
    """Mark the document `processing` under a new ingest_version; None if nothing to do."""
    now = timezone.now()
    with transaction.atomic():
        document = (
            Document.objects.select_for_update().defer("content").filter(pk=document_id).first()
        )
        if document is None:
            return None  # deleted meanwhile
        if document.status in (Document.Status.READY, Document.Status.FAILED):
            # Done (a duplicate delivery); `document_reindex` sets `pending` to run again.
            return None
        lease_ends = document.updated_at + timedelta(seconds=INGEST_LEASE_SECONDS)
        if document.status == Document.Status.PROCESSING and lease_ends > now:
            raise DocumentBusyError(f"document {document_id} is being ingested by another run")
        document.ingest_version += 1
        document.status = Document.Status.PROCESSING
        document.chunks_done = 0
        document.save(update_fields=["ingest_version", "status", "chunks_done", "updated_at"])
    return document, document.ingest_version


def _progress(document_id, version: int, **fields) -> bool:
    """Write progress (and renew the claim); False when a newer run or a delete took over."""
    updated = Document.objects.filter(pk=document_id, ingest_version=version).update(
        updated_at=timezone.now(), **fields
    )
    return updated == 1


def _backend_label(embedder: Embedder) -> str:
    return embedder.name.split(":", 1)[0]


def embed_texts(embedder: Embedder, texts: list[str]) -> list[list[float]]:
    """One embedder call, counted and timed in the metrics."""
    backend = _backend_label(embedder)
    started = time.perf_counter()
    try:
        vectors = embedder.embed_documents(texts)
    except EmbeddingTransientError:
        metrics.EMBEDDING_CALLS.labels(backend=backend, result="transient_error").inc()
        raise
    except Exception:
        metrics.EMBEDDING_CALLS.labels(backend=backend, result="error").inc()
        raise
    finally:
        metrics.EMBEDDING_LATENCY.labels(backend=backend).observe(time.perf_counter() - started)
    metrics.EMBEDDING_CALLS.labels(backend=backend, result="ok").inc()
    return vectors


def _fail(document_id, version: int | None, message: str) -> None:
    filters = {"pk": document_id}
    if version is not None:
        filters["ingest_version"] = version
    Document.objects.filter(**filters).update(
        status=Document.Status.FAILED, error=message, updated_at=timezone.now()
    )
    logger.warning(
        "document ingestion failed", extra={"document_id": str(document_id), "reason": message}
    )


def document_ingest(
    *, document: Document, embedder: Embedder | None = None, final_attempt: bool = False
) -> str:
    """Index `document`: extract, chunk, embed in batches, swap its chunks in atomically.

    Returns what happened: 'ready', 'failed', 'skipped' (already done, or deleted),
    'superseded' (a newer run or a delete took over). Raises `DocumentBusyError` while
    another run holds the document, and `EmbeddingTransientError` (after noting it on the
    document, which goes back to `pending`) so the task retries later; on the
    `final_attempt` a transient error fails the document instead.
    """
    assert_client_schema()
    embedder = embedder or get_embedder()
    claimed = _claim(document.pk)
    if claimed is None:
        return "skipped"
    document, version = claimed
    try:
        return _ingest_claimed(document, version, embedder)
    except EmbeddingTransientError as exc:
        if final_attempt:
            _fail(
                document.pk,
                version,
                f"The embedding service stayed unavailable ({exc.message}). Indexing was "
                "given up; reindex the document when the service is back.",
            )
            return "failed"
        # Back to `pending` (not `processing`): the retry may claim it at once.
        _progress(
            document.pk,
            version,
            status=Document.Status.PENDING,
            error=f"Waiting for the embedding service ({exc.message}); retrying automatically.",
        )
        raise
    except EmbeddingPermanentError as exc:
        _fail(
            document.pk,
            version,
            f"The embedding service refused the request: {exc.message} "
            "Fix the embedding configuration, then reindex the document.",
        )
        return "failed"
    except ExtractionError as exc:
        _fail(document.pk, version, exc.message)
        return "failed"
    except Exception:
        # A bug or a time limit: the document must not stay `processing` forever.
        logger.exception("document ingestion crashed", extra={"document_id": str(document.pk)})
        _fail(
            document.pk,
            version,
            "Indexing stopped on an internal error. Reindex the document to try again; "
            "if it fails again, contact Wafaa support.",
        )
        raise


def _ingest_claimed(document: Document, version: int, embedder: Embedder) -> str:
    if embedder.dimensions != settings.EMBEDDING_DIMENSIONS:
        raise EmbeddingPermanentError(
            f"The embedder '{embedder.name}' makes {embedder.dimensions}-dimensional vectors; "
            f"the database stores {settings.EMBEDDING_DIMENSIONS}.",
            code="dimension_mismatch",
        )
    content = bytes(Document.objects.values_list("content", flat=True).get(pk=document.pk))
    extracted = extract(content, document.kind)
    drafts = chunk_document(
        extracted,
        target_tokens=settings.KNOWLEDGE_CHUNK_TOKENS,
        max_tokens=max(settings.KNOWLEDGE_CHUNK_TOKENS, settings.KNOWLEDGE_CHUNK_TOKENS * 5 // 4),
        overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP,
    )
    if not drafts:
        raise ExtractionError("empty_file", "No text to index was found in this document.")
    if not _progress(document.pk, version, chunks_total=len(drafts), chunks_done=0):
        return "superseded"

    # Every vector first, one embedder call per batch, no transaction open meanwhile.
    batch_size = max(1, settings.EMBEDDING_BATCH_SIZE)
    vectors: list[list[float]] = []
    for start in range(0, len(drafts), batch_size):
        batch = drafts[start : start + batch_size]
        vectors.extend(embed_texts(embedder, [d.text for d in batch]))
        if not _progress(document.pk, version, chunks_done=len(vectors)):
            return "superseded"

    chunks = [
        Chunk(
            document_id=document.pk,
            ordinal=draft.ordinal,
            text=draft.text,
            token_count=draft.token_count,
            metadata=draft.metadata,
            embedding=vector,
            embedder=embedder.name,
        )
        for draft, vector in zip(drafts, vectors, strict=True)
    ]
    with transaction.atomic():
        current = (
            Document.objects.select_for_update().defer("content").filter(pk=document.pk).first()
        )
        if current is None or current.ingest_version != version:
            return "superseded"
        Chunk.objects.filter(document_id=document.pk).delete()
        Chunk.objects.bulk_create(chunks, batch_size=500)
        with connection.cursor() as cursor:
            cursor.execute(
                # A constant expression of ours, no input in it.
                f"UPDATE knowledge_chunk SET search_vector = {selectors.SEARCH_VECTOR_SQL} "  # noqa: S608
                "WHERE document_id = %s",
                [document.pk],
            )
        current.status = Document.Status.READY
        current.chunks_total = len(chunks)
        current.chunks_done = len(chunks)
        current.embedder = embedder.name
        current.dimensions = embedder.dimensions
        current.error = ""
        current.save(
            update_fields=[
                "status",
                "chunks_total",
                "chunks_done",
                "embedder",
                "dimensions",
                "error",
                "updated_at",
            ]
        )
    logger.info(
        "document ingested",
        extra={"document_id": str(document.pk), "chunks": len(chunks), "embedder": embedder.name},
    )
    return "ready"


def document_ingest_by_id(*, document_id, final_attempt: bool = False) -> str:
    """The task's entry point: load by id (tolerating a deleted document) and ingest."""
    document = Document.objects.defer("content").filter(pk=document_id).first()
    if document is None:
        logger.info("document to ingest no longer exists", extra={"document_id": document_id})
        return "skipped"
    return document_ingest(document=document, final_attempt=final_attempt)


def document_reindex(*, document: Document, enqueue: bool = True) -> Document:
    """Index the document again from its stored bytes; its current chunks keep answering
    until the new ones replace them. A run in progress is superseded."""
    assert_client_schema()
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).update(
            status=Document.Status.PENDING,
            ingest_version=F("ingest_version") + 1,
            chunks_done=0,
            error="",
            updated_at=timezone.now(),
        )
        if enqueue:
            _enqueue_ingest(document)
    return Document.objects.defer("content").get(pk=document.pk)


def document_delete(*, document: Document) -> None:
    """Delete the document and its chunks (a running ingestion notices and stops)."""
    assert_client_schema()
    document_id = document.pk
    with transaction.atomic():
        Chunk.objects.filter(document_id=document_id).delete()
        Document.objects.filter(pk=document_id).delete()
    logger.info("document deleted", extra={"document_id": str(document_id)})


def documents_ingest_sweep(*, older_than_seconds: int = 15 * 60) -> int:
    """Enqueue ingestion again for documents stuck `pending`/`processing` with no progress.

    The database is the record and the queue only a trigger: if the broker lost a task (Redis
    restarted without persistence), the document would otherwise wait forever. A document
    still being worked on is untouched (its run writes progress); a duplicate is harmless.
    """
    assert_client_schema()
    cutoff = timezone.now() - timedelta(seconds=max(older_than_seconds, INGEST_LEASE_SECONDS))
    stuck = list(
        Document.objects.filter(
            status__in=[Document.Status.PENDING, Document.Status.PROCESSING],
            updated_at__lt=cutoff,
        ).values_list("pk", flat=True)[:500]
    )
    for document_id in stuck:
        _enqueue_ingest(Document(pk=document_id))
    if stuck:
        logger.warning("re-enqueued stuck document ingestions", extra={"count": len(stuck)})
    return len(stuck)


def documents_needing_reembed(*, embedder_name: str, force: bool = False):
    """Documents whose index was not made by `embedder_name` (all of them with `force`)."""
    queryset = Document.objects.defer("content").order_by("created_at")
    if force:
        return queryset
    return queryset.exclude(embedder=embedder_name, status=Document.Status.READY).exclude(
        status__in=[Document.Status.PENDING, Document.Status.PROCESSING]
    )


# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------


def _query_vector(embedder: Embedder, query: str) -> list[float] | None:
    if embedder.dimensions != settings.EMBEDDING_DIMENSIONS:
        logger.error("embedder dimensions do not match the database; keyword search only")
        return None
    try:
        return embed_texts(embedder, [query])[0]
    except EmbeddingError as exc:
        # A customer still gets an answer from the keyword leg while embeddings are down.
        logger.warning(
            "query embedding failed; keyword search only",
            extra={"code": exc.code, "reason": exc.message},
        )
        return None


def retrieve(query: str, k: int = 5, *, embedder: Embedder | None = None) -> list[RetrievedChunk]:
    """The `k` chunks of the current client that best answer `query`, best first.

    Hybrid: the nearest chunks by cosine similarity (HNSW; only chunks made by the current
    embedder, whose vectors are comparable with the query's) and the best keyword matches
    (full text over a 'simple' tsvector, plus trigram similarity for short queries), each
    leg up to max(20, 4k) candidates, fused with reciprocal rank fusion:
    score = sum over legs of 1 / (60 + rank). RRF needs no calibration between cosine
    similarities and text ranks, and a chunk found by both legs rises to the top.
    An empty or blank query, or a client without documents, gives [].
    """
    assert_client_schema()
    query = (query or "").strip()[:MAX_QUERY_CHARS]
    k = max(1, min(int(k), MAX_K))
    if not query:
        return []
    embedder = embedder or get_embedder()
    candidates = max(20, 4 * k)

    vector_hits: list[tuple[int, float]] = []
    vector = _query_vector(embedder, query)
    if vector is not None:
        vector_hits = selectors.chunk_vector_search(
            vector=vector,
            embedder_name=embedder.name,
            limit=candidates,
            ef_search=max(settings.HNSW_EF_SEARCH, candidates),
        )
    keyword_hits = selectors.chunk_keyword_search(query=query, limit=candidates)

    scores: dict[int, float] = defaultdict(float)
    similarity = dict(vector_hits)
    keyword = dict(keyword_hits)
    for hits in (vector_hits, keyword_hits):
        for rank, (chunk_id, _) in enumerate(hits, start=1):
            scores[chunk_id] += 1.0 / (RRF_K + rank)
    ranked = sorted(scores, key=lambda cid: (-scores[cid], -similarity.get(cid, -math.inf), cid))[
        :k
    ]
    missing = [cid for cid in ranked if cid not in similarity]
    if vector is not None and missing:
        # Keyword-only hits get their cosine similarity too, so confidence compares like
        # with like (one indexed read of at most k rows).
        similarity.update(
            selectors.chunk_similarities(
                vector=vector, embedder_name=embedder.name, chunk_ids=missing
            )
        )
    chunks = selectors.chunks_for_results(chunk_ids=ranked)
    return [
        RetrievedChunk(
            chunk_id=cid,
            document_id=str(chunks[cid].document_id),
            document_title=chunks[cid].document.title,
            text=chunks[cid].text,
            metadata=chunks[cid].metadata or {},
            score=scores[cid],
            similarity=similarity.get(cid),
            keyword_rank=keyword.get(cid),
        )
        for cid in ranked
        if cid in chunks  # a document deleted between the search and this read
    ]
