"""Reads of a client's knowledge (current client schema): documents, and the two legs of
hybrid retrieval (vector and keyword search) that `knowledge.services.retrieve` fuses.

The search functions return `(chunk_id, score)` pairs in rank order and nothing else, so
each leg stays one cheap SQL statement and the fusion logic lives in one place.
Only chunks of documents that are not `failed` are searched, and only those of the version
the document's last complete ingestion wrote (`Chunk.version = Document.indexed_version`):
a running ingestion writes its chunks in batches under its own version, and they become
visible all at once when it finishes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Sequence

from django.db import OperationalError, connection, transaction
from django.db.models import F, QuerySet
from pgvector.django import CosineDistance
from psycopg import errors as psycopg_errors

from knowledge.models import Chunk, Document
from wafaa.text import STOPWORDS, normalize, normalize_sql

logger = logging.getLogger(__name__)

# Statuses whose chunks retrieval may use. `pending`/`processing` documents only have chunks
# when they are being re-indexed: their previous complete index keeps answering until the
# new one replaces it in one transaction.
SEARCHABLE_STATUSES = (
    Document.Status.READY,
    Document.Status.PENDING,
    Document.Status.PROCESSING,
)

# At most this many query words go into the full-text query; a pasted paragraph must not
# turn into a hundred-term OR that matches every chunk.
MAX_KEYWORD_TERMS = 32
# Trigram matching is for short queries ("capuccino price", "wifi", "التوصيل"): it finds
# typos and Arabic words with a clitic that full-text matching misses. Against a long query
# it matches nothing useful and costs a scan of most of the trigram index.
TRIGRAM_MAX_QUERY_CHARS = 64
# ...and only when full text found fewer chunks than this: trigram candidates are costly
# in a large knowledge base (common trigrams are everywhere), so it is the fallback for a
# query whose words full text does not know, not a second opinion on every query.
TRIGRAM_BELOW_HITS = 3
# Full text ranks every chunk that matches, about 5 microseconds each. In a knowledge base
# of FREQUENT_MIN_CHUNKS chunks or more, the query keeps its rarest words while their
# estimated matches stay within MAX_RANKED_CHUNKS, and never a word found in more than
# MAX_TERM_FREQUENCY of the chunks: common words say little (an IDF-like stopword list).
FREQUENT_MIN_CHUNKS = 5000
MAX_RANKED_CHUNKS = 5000
MAX_TERM_FREQUENCY = 0.1
STATISTICS_CACHE_SECONDS = 300
# Time budgets of the keyword legs: a pathological query (a very common short word against
# 100k chunks) must not hold up a customer's answer; the vector leg still answers.
FULL_TEXT_TIMEOUT_MS = 200
TRIGRAM_TIMEOUT_MS = 60
_STATISTICS_CACHE: dict[str, tuple[float, tuple[float, dict[str, float]]]] = {}
_WORD = re.compile(r"\w+")
# The Arabic article with its proclitics (and, so, with, like, for): "والتوصيل" -> "توصيل".
_ARABIC_PREFIX = re.compile(r"^(?:[وف]?[بك]?ال|[وف]?لل)(?=\w{2,})")
_ARABIC = re.compile("[\u0600-\u06ff]")
# The full-text column holds the chunk's words normalised like the query's (wafaa.text), so
# "خدمه" finds "خدمة" and "٣٠" finds "30". 'simple': no stemming, no stopwords, the same for
# Arabic, English and French.
SEARCH_VECTOR_SQL = f"to_tsvector('simple', {normalize_sql('text')})"


def document_list(*, status: str | None = None) -> QuerySet[Document]:
    # `content` holds the original file (up to the plan's upload limit): never load it for
    # a list or a detail page.
    queryset = Document.objects.defer("content").order_by("-created_at", "pk")
    return queryset.filter(status=status) if status else queryset


def document_get(*, document_id) -> Document | None:
    return Document.objects.defer("content").filter(pk=document_id).first()


def document_count() -> int:
    return Document.objects.count()


def chunk_vector_search(
    *, vector: Sequence[float], embedder_name: str, limit: int, ef_search: int
) -> list[tuple[int, float]]:
    """Nearest chunks by cosine distance (HNSW), as (chunk_id, cosine similarity).

    Only chunks embedded by `embedder_name`: vectors of another model live in another space.
    `hnsw.iterative_scan` lets the index keep scanning when the filters (embedder, document
    status) drop candidates, so a client mid-way through a re-embed still gets `limit` hits.
    """
    distance = CosineDistance("embedding", list(vector))
    queryset = (
        Chunk.objects.filter(
            embedder=embedder_name,
            document__status__in=SEARCHABLE_STATUSES,
            version=F("document__indexed_version"),
        )
        .annotate(distance=distance)
        .order_by("distance")
        .values_list("id", "distance")[:limit]
    )
    # enable_seqscan off: with ef_search >= 160 the planner's cost estimate prefers an exact
    # scan of a ~10k-chunk table, measured 15x slower than the index (bench/retrieval.py);
    # the index is fine for tiny tables too.
    with _local_settings(
        {
            "hnsw.ef_search": str(ef_search),
            "hnsw.iterative_scan": "relaxed_order",
            "enable_seqscan": "off",
        }
    ):
        rows = list(queryset)
    # relaxed_order may return neighbours slightly out of order; put them back in order.
    rows.sort(key=lambda row: (row[1], row[0]))
    return [(chunk_id, 1.0 - float(distance)) for chunk_id, distance in rows]


def keyword_terms(query: str) -> list[str]:
    """The words of `query` worth matching: no stopwords, no one-letter words, deduplicated.

    Falls back to every word when all are stopwords ("what is it?" still searches).
    """
    words = [w for w in _WORD.findall(query.casefold()) if len(w) > 1]
    content = [w for w in words if normalize(w) not in STOPWORDS]
    chosen = content or words
    return list(dict.fromkeys(chosen))[:MAX_KEYWORD_TERMS]


def _tsquery(terms: list[str]) -> str:
    """An OR query over the terms, prefix-matching words long enough to carry a suffix.

    OR rather than websearch_to_tsquery's AND: with the 'simple' configuration (no
    stopwords, no stemming, needed so Arabic and English are treated alike) a natural
    question almost never has all its words in one chunk. ts_rank_cd then ranks chunks
    holding more of the words, closer together, first.
    """
    lexemes: list[str] = []
    for term in terms:
        # The raw word too: chunks indexed before the index was normalised hold it as is.
        variants = [normalize(term), term]
        if _ARABIC.search(term):
            stems = [_ARABIC_PREFIX.sub("", v) for v in variants]
            # Stored words usually carry the article: match "التوصيل" for "توصيل" too.
            variants = [*variants, *stems, *("ال" + stem for stem in stems)]
        for variant in dict.fromkeys(variants):
            lexemes.append(f"'{variant}':*" if len(variant) >= 4 else f"'{variant}'")
    return " | ".join(dict.fromkeys(lexemes))


def _term_statistics() -> tuple[float, dict[str, float]]:
    """(chunks, {lexeme: share of chunks holding it}) for the current client's chunks.

    Read from PostgreSQL's own statistics (pg_class.reltuples and the tsvector column's
    most common elements in pg_stats, both kept by ANALYZE): one catalog read, cached per
    schema for a few minutes.
    """
    schema = connection.schema_name
    cached = _STATISTICS_CACHE.get(schema)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.reltuples, s.most_common_elems::text::text[], s.most_common_elem_freqs "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname "
            "AND s.attname = 'search_vector' "
            "WHERE n.nspname = %s AND c.relname = 'knowledge_chunk'",
            [schema],
        )
        row = cursor.fetchone()
    chunks = float(row[0]) if row else 0.0
    # The frequencies array ends with three summary numbers; zip stops at the lexemes.
    frequent = dict(zip(row[1], row[2], strict=False)) if row and row[1] else {}
    statistics = (chunks, frequent)
    _STATISTICS_CACHE[schema] = (time.monotonic() + STATISTICS_CACHE_SECONDS, statistics)
    return statistics


def selective_terms(terms: list[str]) -> list[str]:
    """The terms worth a full-text query in this knowledge base (see MAX_RANKED_CHUNKS)."""
    chunks, frequency = _term_statistics()
    if chunks < FREQUENT_MIN_CHUNKS:
        return terms
    kept, estimated = [], 0.0
    for term in sorted(terms, key=lambda t: frequency.get(t, 0.0)):
        share = frequency.get(term, 0.0)  # not among the common ones: rare enough
        if share > MAX_TERM_FREQUENCY:
            break
        if kept and estimated + share * chunks > MAX_RANKED_CHUNKS:
            break
        kept.append(term)
        estimated += share * chunks
    return [t for t in terms if t in kept]  # in the query's order


@contextlib.contextmanager
def _local_settings(values: dict[str, str]):
    """A transaction (or savepoint) with these settings, as SET LOCAL.

    SET LOCAL lasts until the end of the *outer* transaction: when called inside one (the
    reply pipeline, a test), the previous values are put back on the way out.
    """
    nested = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        names = list(values)
        previous: list[str] = []
        if nested:
            cursor.execute("SELECT " + ", ".join(["current_setting(%s, true)"] * len(names)), names)
            previous = list(cursor.fetchone())
        _set_local(cursor, values)
        yield
        if nested:
            _set_local(cursor, dict(zip(names, previous, strict=True)))


def _set_local(cursor, values: dict[str, str | None]) -> None:
    pairs = [(name, value) for name, value in values.items() if value is not None]
    cursor.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(pairs)),
        [item for pair in pairs for item in pair],
    )


def _bounded(sql: str, params: dict, timeout_ms: int) -> list[tuple] | None:
    """Run a query under a statement timeout; None (logged) if it ran out of time."""
    try:
        with _local_settings({"statement_timeout": str(timeout_ms)}), connection.cursor() as c:
            c.execute(sql, params)
            return c.fetchall()
    except OperationalError as exc:
        if not isinstance(exc.__cause__, psycopg_errors.QueryCanceled):
            raise
        logger.warning("keyword search leg timed out", extra={"timeout_ms": timeout_ms})
        return None


def chunk_keyword_search(*, query: str, limit: int) -> list[tuple[int, float]]:
    """Chunks matching the query's words, as (chunk_id, keyword score in 0..1), best first.

    Full text: an OR of the query's words (see `_tsquery`) over the 'simple' tsvector,
    ranked by ts_rank_cd normalised to 0..1. In a large knowledge base the most common
    words are left out (`selective_terms`): they say little and would make PostgreSQL
    rank much of the table.
    Trigram: when full text finds (almost) nothing and the query is short, the word
    similarity of the query to the chunk text (typos, words with Arabic clitics).
    A chunk found by both gets the larger score. Each leg has a time budget: a leg that
    runs out is skipped (logged), and the vector leg still answers.
    """
    terms = keyword_terms(query)
    scores: dict[int, float] = {}
    if terms:
        terms = selective_terms(terms)
        if not terms:
            # Only very common words: no keyword signal worth ranking most of the table for
            # (and no typo for trigrams to fix). The vector leg answers alone.
            return []
        rows = _bounded(
            _FULL_TEXT_SQL,
            {"tsquery": _tsquery(terms), "statuses": list(SEARCHABLE_STATUSES), "limit": limit},
            FULL_TEXT_TIMEOUT_MS,
        )
        scores.update((chunk_id, float(score)) for chunk_id, score in rows or [])
    text = query.strip()
    if len(scores) < TRIGRAM_BELOW_HITS and text and len(text) <= TRIGRAM_MAX_QUERY_CHARS:
        rows = _bounded(
            _TRIGRAM_SQL,
            {"text": text, "statuses": list(SEARCHABLE_STATUSES), "limit": limit},
            TRIGRAM_TIMEOUT_MS,
        )
        for chunk_id, score in rows or []:
            scores[chunk_id] = max(scores.get(chunk_id, 0.0), float(score))
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:limit]


# Normalisation 32 maps ts_rank_cd to rank/(rank+1): 0..1, like the trigram similarity.
_FULL_TEXT_SQL = """
    SELECT c.id, ts_rank_cd(c.search_vector, to_tsquery('simple', %(tsquery)s), 32) AS score
    FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id
    WHERE d.status = ANY(%(statuses)s) AND c.version = d.indexed_version
      AND c.search_vector @@ to_tsquery('simple', %(tsquery)s)
    ORDER BY score DESC, c.id LIMIT %(limit)s
"""
_TRIGRAM_SQL = """
    SELECT c.id, word_similarity(%(text)s, c.text) AS score
    FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id
    WHERE d.status = ANY(%(statuses)s) AND c.version = d.indexed_version
      AND %(text)s <%% c.text
    ORDER BY score DESC, c.id LIMIT %(limit)s
"""


def chunk_similarities(
    *, vector: Sequence[float], embedder_name: str, chunk_ids: Sequence[int]
) -> dict[int, float]:
    """Cosine similarity of `vector` to each of these chunks (made by `embedder_name`)."""
    rows = (
        Chunk.objects.filter(pk__in=list(chunk_ids), embedder=embedder_name)
        .annotate(distance=CosineDistance("embedding", list(vector)))
        .values_list("id", "distance")
    )
    return {chunk_id: 1.0 - float(distance) for chunk_id, distance in rows}


def chunks_for_results(*, chunk_ids: Sequence[int]) -> dict[int, Chunk]:
    """The chunks (with their document's id and title) of a result list, by id."""
    queryset = (
        Chunk.objects.filter(pk__in=list(chunk_ids))
        .select_related("document")
        .only("id", "text", "metadata", "document__id", "document__title")
    )
    return {chunk.pk: chunk for chunk in queryset}
