"""A client's knowledge: documents and their chunks with vectors (client schema)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

from wafaa.models import UUIDModel


class Document(UUIDModel):
    class Source(models.TextChoices):
        UPLOAD = "upload", "File upload"
        TEXT = "text", "Text sent through the API"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    title = models.CharField(max_length=300)
    source = models.CharField(max_length=16, choices=Source.choices)
    original_filename = models.CharField(max_length=300, blank=True, default="")
    content_type = models.CharField(max_length=100, blank=True, default="")
    kind = models.CharField(max_length=16, blank=True, default="")  # txt, md, html, pdf, docx, csv
    size_bytes = models.PositiveIntegerField(default=0)
    checksum = models.CharField(max_length=64, unique=True)  # SHA-256 of the content
    content = models.BinaryField()  # the original bytes, so a reindex needs no re-upload
    language = models.CharField(max_length=10, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    error = models.TextField(blank=True, default="")
    # A stable code for `error` (extraction's codes, a cap passed, the embedding service).
    error_code = models.CharField(max_length=40, blank=True, default="")
    # What the uploader should know although the document was indexed (skipped rows, pages).
    warnings = models.JSONField(default=list, blank=True)
    # True when no title was given: ingestion replaces it with the document's own title.
    title_auto = models.BooleanField(default=False)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    embedder = models.CharField(max_length=100, blank=True, default="")
    dimensions = models.PositiveIntegerField(default=0)
    # Bumped by each (re)index: a stale ingestion run sees the change and stops.
    ingest_version = models.PositiveIntegerField(default=0)
    # The ingest_version whose chunks retrieval uses: a run writes its chunks in batches under
    # its own version, invisible until the swap at its end sets this field.
    indexed_version = models.PositiveIntegerField(default=0)
    created_by_email = models.CharField(max_length=254, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def progress(self) -> float:
        return round(self.chunks_done / self.chunks_total, 3) if self.chunks_total else 0.0


class Chunk(models.Model):
    id = models.BigAutoField(primary_key=True)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    version = models.PositiveIntegerField(default=0)  # the document's ingest_version that wrote it
    text = models.TextField()
    token_count = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True)
    embedder = models.CharField(max_length=100, blank=True, default="")
    search_vector = SearchVectorField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "version", "ordinal"], name="unique_chunk_version_ordinal"
            ),
        ]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(name="chunk_search_vector_gin", fields=["search_vector"]),
            GinIndex(name="chunk_text_trgm", fields=["text"], opclasses=["gin_trgm_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"
