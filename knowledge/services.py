"""Knowledge: upload, ingestion (extract → chunk → embed → store), reindex, delete, retrieval.

All functions run in the current client's schema (`assert_client_schema`).

Upload checks only cheap facts before storing anything (plan size limit, type by content,
a zip's directory, a CSV's header and row count), so a bad or hostile file is a 4xx with an
actionable message and leaves no row, and the web process never inflates or parses a file.
The same bytes twice give back the first document. Ingestion then runs in a Celery task on
the `ingest` queue; extraction itself runs in a child process with a memory ceiling
(`knowledge.sandbox`), and a file that passes a cap fails its document with a code and a
reason the API shows (`error_code`, `error`).

Ingestion is safe to run twice, concurrently, or after a crash:
- a run *claims* the document (status `processing`, a new `ingest_version`) in a short
  transaction; another run that finds a live claim (progress written within
  INGEST_LEASE_SECONDS) backs off with `DocumentBusyError`, one whose claim went stale (its
  worker died) is taken over;
- chunks are embedded and written one batch at a time (no outside call inside a
  transaction, memory flat in the number of chunks), under the run's own `ingest_version`,
  with a small progress UPDATE per batch that also renews the claim and notices a newer run;
- at the end, one transaction makes the run's chunks the document's index
  (`indexed_version`) and deletes every other version, and only if the run still owns the
  latest `ingest_version`: retrieval never sees a half-indexed document (it reads only
  `Chunk.version = Document.indexed_version`) and a stale run never overwrites a newer one.

Retrieval is hybrid: HNSW vector search and keyword search (full text + trigram), fused with
reciprocal rank fusion (see `retrieve`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from typing import IO

from django.conf import settings
from django.db import connection, reset_queries, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.utils import timezone

from knowledge import sandbox, selectors
from knowledge.chunking import ChunkDraft
from knowledge.extraction import (
    EMPTY_FILE,
    LIMIT_CODES,
    UNSUPPORTED_TYPE,
    ExtractionError,
    Limits,
    detect_kind,
)
from knowledge.models import Chunk, Document
from wafaa import metrics
from wafaa.ai.answerer import detect_language
from wafaa.ai.embeddings import (
    Embedder,
    EmbeddingError,
    EmbeddingPermanentError,
    EmbeddingTransientError,
    OpenAIEmbedder,
    truncate_text,
)
from wafaa.ai_config import get_embedder, get_query_embedder
from wafaa.db import release_connection
from wafaa.errors import ApplicationError, PayloadTooLargeError, PlanLimitError
from wafaa.tenancy import assert_client_schema
from wafaa.text import normalize_sql

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


# The full-text vector of one chunk's text, computed by PostgreSQL as the chunk is inserted.
_SEARCH_VECTOR_OF_PARAM = f"to_tsvector('simple', {normalize_sql('%s')})"
# A client's total chunks over its plan: the document fails with this code.
CLIENT_CHUNK_LIMIT = "client_chunk_limit"


class DocumentInvalidError(ApplicationError):
    """The upload cannot be used as knowledge; `code` says why (extraction's codes).

    400 for an unreadable file, 415 for a type Wafaa does not read, 422 for a file refused
    for its size or complexity (a decompression bomb, too many rows)."""

    code = "document_invalid"
    status_code = 400

    @classmethod
    def from_extraction(cls, exc: ExtractionError, filename: str) -> DocumentInvalidError:
        error = cls(exc.message, code=exc.code, details={"filename": filename})
        if exc.code == UNSUPPORTED_TYPE:
            error.status_code = 415
        elif exc.code in LIMIT_CODES:
            error.status_code = 422
        return error


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


# --------------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------------


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def extraction_limits(client) -> Limits:
    """The caps of one document's extraction: settings, and the client's plan for rows."""
    return Limits(
        max_uncompressed_bytes=settings.KNOWLEDGE_MAX_UNCOMPRESSED_BYTES,
        max_zip_entries=settings.KNOWLEDGE_MAX_ZIP_ENTRIES,
        max_compression_ratio=settings.KNOWLEDGE_MAX_COMPRESSION_RATIO,
        max_xml_elements=settings.KNOWLEDGE_MAX_XML_ELEMENTS,
        max_pdf_pages=settings.KNOWLEDGE_MAX_PDF_PAGES,
        # A CSV row is one chunk: more rows than the plan's chunks per document never fit.
        max_rows=client.max_chunks_per_document,
        max_characters=settings.KNOWLEDGE_MAX_CHARACTERS,
    )


def _detected(client, data: bytes, filename: str, content_type: str) -> str:
    try:
        # Cheap facts only (see knowledge.extraction.detect_kind): everything that needs
        # inflating or parsing runs in the ingest worker, under caps and a memory ceiling.
        return detect_kind(data, filename, content_type, extraction_limits(client))
    except ExtractionError as exc:
        raise DocumentInvalidError.from_extraction(exc, filename) from None


def _title_for(*candidates: str | None) -> str:
    best = next((c.strip() for c in candidates if c and c.strip()), "Untitled")
    return truncate_text(" ".join(best.split()), 300)


def _upload_title(title: str, filename: str) -> tuple[str, bool]:
    """(title, chosen automatically): the given one, else the file's name, which ingestion
    replaces with the document's own title (or first line) when it finds one."""
    if title.strip():
        return _title_for(title), False
    return _title_for(filename.rsplit(".", 1)[0] if filename else ""), True


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
    not readable knowledge (400, with the extraction code), of a type Wafaa does not read
    (415), one refused for its size or complexity by cheap checks (422: a zip directory of a
    decompression bomb, a CSV with more rows than the plan's chunks per document), a new
    document over the plan's `max_documents` (403). The same bytes again return the existing
    document. Its language, title (when none was given) and warnings come from ingestion.
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

    kind = _detected(client, content, filename, content_type)
    title, title_auto = _upload_title(title, filename)
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
            title=title,
            title_auto=title_auto,
            source=source,
            original_filename=filename[:300],
            content_type=content_type[:100],
            kind=kind,
            size_bytes=len(content),
            checksum=checksum,
            content=content,
            created_by_email=created_by_email[:254],
        )
        if enqueue:
            _enqueue_ingest(document)
    logger.info(
        "document uploaded",
        extra={"document_id": str(document.pk), "kind": kind, "size_bytes": len(content)},
    )
    return UploadResult(document, created=True)


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


def _fail(document_id, version: int | None, message: str, code: str = "") -> None:
    filters = {"pk": document_id}
    if version is not None:
        filters["ingest_version"] = version
    updated = Document.objects.filter(**filters).update(
        status=Document.Status.FAILED, error=message, error_code=code, updated_at=timezone.now()
    )
    if updated:
        metrics.DOCUMENTS_FAILED.labels(reason=code or "error").inc()
        # Chunks a run wrote before failing are not the index; drop them.
        indexed = Document.objects.filter(pk=document_id).values_list("indexed_version")
        Chunk.objects.filter(document_id=document_id).exclude(version__in=indexed).delete()
    logger.warning(
        "document ingestion failed",
        extra={"document_id": str(document_id), "reason": message, "code": code},
    )


def document_ingest(
    *,
    document: Document,
    embedder: Embedder | None = None,
    final_attempt: bool = False,
    client=None,
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
        return _ingest_claimed(document, version, embedder, client or connection.tenant)
    except EmbeddingTransientError as exc:
        if final_attempt:
            _fail(
                document.pk,
                version,
                f"The embedding service stayed unavailable ({exc.message}). Indexing was "
                "given up; reindex the document when the service is back.",
                "embedding_unavailable",
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
            "embedding_refused",
        )
        return "failed"
    except ExtractionError as exc:
        # A cap passed, a file the reader refused, a bomb that hit the memory ceiling: the
        # document fails with its reason, the worker goes on with the next task.
        _fail(document.pk, version, exc.message, exc.code)
        return "failed"
    except Exception:
        # A bug or a time limit: the document must not stay `processing` forever.
        logger.exception("document ingestion crashed", extra={"document_id": str(document.pk)})
        _fail(
            document.pk,
            version,
            "Indexing stopped on an internal error. Reindex the document to try again; "
            "if it fails again, contact Wafaa support.",
            "internal_error",
        )
        raise


def _batched(items: Iterable[ChunkDraft], size: int) -> Iterator[list[ChunkDraft]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _check_client_chunks(client, document_id, chunks: int) -> None:
    """Refuse a document that would take the client's index past the plan's `max_chunks`."""
    others = (
        Chunk.objects.filter(version=F("document__indexed_version"))
        .exclude(document_id=document_id)
        .count()
    )
    if others + chunks > client.max_chunks:
        raise ExtractionError(
            CLIENT_CHUNK_LIMIT,
            f"This document makes {chunks:,} chunks and the other documents hold {others:,}; "
            f"this plan indexes {client.max_chunks:,} chunks in all. Delete documents you no "
            "longer need, or ask Wafaa support for a larger plan.",
        )


def _ingest_claimed(document: Document, version: int, embedder: Embedder, client) -> str:
    if embedder.dimensions != settings.EMBEDDING_DIMENSIONS:
        raise EmbeddingPermanentError(
            f"The embedder '{embedder.name}' makes {embedder.dimensions}-dimensional vectors; "
            f"the database stores {settings.EMBEDDING_DIMENSIONS}.",
            code="dimension_mismatch",
        )
    content = bytes(Document.objects.values_list("content", flat=True).get(pk=document.pk))
    chunk_tokens = settings.KNOWLEDGE_CHUNK_TOKENS
    with sandbox.extract_in_child(
        content,
        kind=document.kind,
        limits=extraction_limits(client),
        target_tokens=chunk_tokens,
        max_tokens=max(chunk_tokens, chunk_tokens * 5 // 4),
        overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP,
        max_chunks=client.max_chunks_per_document,
        memory_mb=settings.KNOWLEDGE_EXTRACT_MEMORY_MB,
        # No progress is written while the child works: it must end well within the lease,
        # or a duplicate delivery would take the document over meanwhile.
        timeout_seconds=min(settings.KNOWLEDGE_EXTRACT_TIMEOUT_SECONDS, INGEST_LEASE_SECONDS - 30),
    ) as extracted:
        del content
        total = extracted.chunks_total
        if not total:
            raise ExtractionError(EMPTY_FILE, "No text to index was found in this document.")
        _check_client_chunks(client, document.pk, total)
        facts = {
            "chunks_total": total,
            "chunks_done": 0,
            "warnings": extracted.warnings,
            "language": detect_language(extracted.language_sample),
        }
        if document.title_auto:
            facts["title"] = _title_for(
                extracted.title, document.title, extracted.language_sample.split("\n", 1)[0]
            )
        if not _progress(document.pk, version, **facts):
            return "superseded"

        # One batch at a time: embed (no transaction open), write, note the progress. Only
        # one batch of texts and vectors is ever in memory, however long the document.
        done = 0
        for batch in _batched(extracted.drafts, max(1, settings.EMBEDDING_BATCH_SIZE)):
            vectors = embed_texts(embedder, [draft.text for draft in batch])
            Chunk.objects.bulk_create(
                [
                    Chunk(
                        document_id=document.pk,
                        version=version,
                        ordinal=draft.ordinal,
                        text=draft.text,
                        token_count=draft.token_count,
                        metadata=draft.metadata,
                        embedding=vector,
                        embedder=embedder.name,
                        # The words normalised like the query's (selectors, wafaa.text).
                        search_vector=RawSQL(_SEARCH_VECTOR_OF_PARAM, (draft.text,)),  # noqa: S611 - constant SQL, the text is a parameter
                    )
                    for draft, vector in zip(batch, vectors, strict=True)
                ]
            )
            done += len(batch)
            del batch, vectors
            # With DEBUG on, Django keeps every query's SQL, here ~0.6 MB of vectors per
            # batch: memory that would grow with the chunks.
            reset_queries()
            if not _progress(document.pk, version, chunks_done=done):
                # A newer run or a delete took over: what this run wrote is nobody's index.
                Chunk.objects.filter(document_id=document.pk, version=version).delete()
                return "superseded"

    with transaction.atomic():
        current = (
            Document.objects.select_for_update().defer("content").filter(pk=document.pk).first()
        )
        if current is None or current.ingest_version != version:
            return "superseded"
        # The swap: this run's chunks become the index, every other version goes.
        Chunk.objects.filter(document_id=document.pk).exclude(version=version).delete()
        current.status = Document.Status.READY
        current.indexed_version = version
        current.chunks_total = done
        current.chunks_done = done
        current.embedder = embedder.name
        current.dimensions = embedder.dimensions
        current.error = ""
        current.error_code = ""
        current.save(
            update_fields=[
                "status",
                "indexed_version",
                "chunks_total",
                "chunks_done",
                "embedder",
                "dimensions",
                "error",
                "error_code",
                "updated_at",
            ]
        )
    logger.info(
        "document ingested",
        extra={"document_id": str(document.pk), "chunks": done, "embedder": embedder.name},
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
            error_code="",
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
    if isinstance(embedder, OpenAIEmbedder):
        release_connection()  # none held while the embeddings API answers (pooled workers)
    try:
        return embed_texts(embedder, [query])[0]
    except EmbeddingError as exc:
        # A customer still gets an answer from the keyword leg while embeddings are down.
        logger.warning(
            "query embedding failed; keyword search only",
            extra={"code": exc.code, "reason": exc.message},
        )
        return None


def retrieve(
    query: str,
    k: int = 5,
    *,
    embedder: Embedder | None = None,
    query_vector: Sequence[float] | None = None,
) -> list[RetrievedChunk]:
    """The `k` chunks of the current client that best answer `query`, best first.

    Hybrid: the nearest chunks by cosine similarity (HNSW; only chunks made by the current
    embedder, whose vectors are comparable with the query's) and the best keyword matches
    (full text over a 'simple' tsvector, plus trigram similarity for short queries), each
    leg up to max(20, 4k) candidates, fused with reciprocal rank fusion:
    score = sum over legs of 1 / (60 + rank). RRF needs no calibration between cosine
    similarities and text ranks, and a chunk found by both legs rises to the top.
    An empty or blank query, or a client without documents, gives [].
    `query_vector`: the query's embedding by `embedder`, when the caller has it already.
    """
    assert_client_schema()
    query = (query or "").strip()[:MAX_QUERY_CHARS]
    k = max(1, min(int(k), MAX_K))
    if not query:
        return []
    embedder = embedder or get_query_embedder()
    candidates = max(20, 4 * k)

    vector_hits: list[tuple[int, float]] = []
    vector = list(query_vector) if query_vector is not None else _query_vector(embedder, query)
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
