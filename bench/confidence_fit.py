"""Refit the answer-confidence model (wafaa.ai.confidence.MODELS) on the evaluation sets.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/confidence_fit.py

For each offline embedder, every question of the fitted sets (not the held-out ones) goes
through the reply drafting's assessment (retrieval, variants, question similarity, word
coverage); the best entry's features are recorded with whether it states the expected fact.
A logistic regression (L2 0.001; right = 1; a wrong entry weighted 2 and an out-of-knowledge
question 4 as 0) is fitted per embedder, and its bias shifted so that DEFAULT_THRESHOLD is
the lowest confidence at which no out-of-knowledge question of the sets gets an answer.
Prints the weights to paste into MODELS, the in-sample rates and leave-one-set-out rates.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.answers import HELD_OUT, SETS, prepare, python_vectors
from bench.common import setup_django

FEATURES = (
    "similarity",
    "overlap",
    "question_similarity",
    "similarity_margin",
    "question_margin",
    "score_margin",
    "unknown",
    "same_language",
    "keyword",
    "coverage",
)


def collect(set_name: str, backend: str, *, numpy_vectors: bool) -> list[tuple]:
    """(features, in knowledge, best entry right) per question of the set."""
    from django.db import connection

    from conversations import evaluation, pipeline
    from wafaa.ai import confidence

    client, questions = prepare(set_name, backend, python_vectors=numpy_vectors)
    rows = []
    seen = []
    original = confidence.assess

    def recording(*args, **kwargs):  # instrumentation: the real assessment, recorded
        result = original(*args, **kwargs)
        seen.append(result)
        return result

    confidence.assess = recording
    try:
        for item in questions:
            seen.clear()
            language = pipeline.question_language(client, item.question)
            pipeline.draft_answer(client=client, question=item.question, language=language)
            result = seen[-1]  # a burst read as one question is assessed last
            metadata = (result.best.metadata or {}) if result.best else {}
            text = " ".join([result.best.text, *(metadata.get("answers") or {}).values()])
            right = item.in_knowledge and evaluation.contains_fact(text, item.expected)
            features = [result.features.get(name, 0.0) for name in FEATURES]
            rows.append((features, item.in_knowledge, right))
    finally:
        confidence.assess = original
        connection.set_schema_to_public()
    return rows


def fit(rows: list[tuple], *, l2: float = 0.001, steps: int = 8000) -> tuple[np.ndarray, float]:
    x = np.array([r[0] for r in rows])
    y = np.array([1.0 if r[2] else 0.0 for r in rows])
    weight = np.array([1.0 if r[2] else 2.0 if r[1] else 4.0 for r in rows])
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        g = (p - y) * weight
        w -= 0.5 * (x.T @ g / len(y) + l2 * w)
        b -= 0.5 * g.mean()
    return w, b


def calibrate(rows, w, b, target: float) -> float:
    """The bias that puts the highest out-of-knowledge confidence just under `target`."""
    logits = np.array([r[0] for r in rows if not r[1]]) @ w + b
    return b + math.log(target / (1 - target)) - float(logits.max()) - 0.01


def rates(rows, w, b, threshold: float) -> tuple[float, int, int]:
    confidence = 1.0 / (1.0 + np.exp(-(np.array([r[0] for r in rows]) @ w + b)))
    known = [(r, c) for r, c in zip(rows, confidence, strict=True) if r[1]]
    right = sum(1 for r, c in known if c >= threshold and r[2])
    wrong = sum(1 for r, c in known if c >= threshold and not r[2])
    ook = sum(1 for r, c in zip(rows, confidence, strict=True) if not r[1] and c >= threshold)
    return round(right / len(known), 3), wrong, ook


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedders", default="local,hashing")
    parser.add_argument("--python-vectors", action="store_true")
    options = parser.parse_args()
    setup_django()
    if options.python_vectors:
        python_vectors()
    from wafaa.ai import confidence

    target = confidence.DEFAULT_THRESHOLD
    fitted = [name for name in SETS if name not in HELD_OUT]
    for backend in options.embedders.split(","):
        data = {
            name: collect(name, backend, numpy_vectors=options.python_vectors) for name in fitted
        }
        everything = [row for rows in data.values() for row in rows]
        w, b = fit(everything)
        b = calibrate(everything, w, b, target)
        weights = {name: round(float(v), 2) for name, v in zip(FEATURES, w, strict=True)}
        print(f'"{backend}": ({weights}, {round(b, 2)}),')
        rounded = np.array(list(weights.values()))
        for name, rows in data.items():
            print(
                f"  in-sample {name}: right, wrong, ook answered =",
                rates(rows, rounded, round(b, 2), target),
            )
        for held in fitted:
            train = [row for name in fitted if name != held for row in data[name]]
            w2, b2 = fit(train)
            b2 = calibrate(train, w2, b2, target)
            print(
                f"  leave {held} out: right, wrong, ook answered =",
                rates(data[held], w2, b2, target),
            )


if __name__ == "__main__":
    main()
