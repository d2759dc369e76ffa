"""Answer quality on the evaluation sets (tests/data/eval/), offline, per language.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/answers.py --label after

For each set (a FAQ and its questions) and each offline embedder (`local`, what `make run`
uses without OPENAI_API_KEY, and `hashing`, what the test suite uses), a dedicated client
(`bench-eval-<set>-<embedder>`) gets the FAQ uploaded and indexed once, then every question
goes through `conversations.evaluation.evaluate` (the reply drafting, nothing sent). Prints
one table per run and writes bench/results/answers.json, keeping the runs of other labels
(so a `before` and an `after` measurement sit side by side).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RESULTS, ROOT, bench_client, setup_django, write_results

SETS = ("restaurant", "garage")
EVAL_DIR = ROOT / "tests" / "data" / "eval"


def run(set_name: str, backend: str) -> dict:
    from django.conf import settings
    from django_tenants.utils import tenant_context

    from conversations import evaluation
    from knowledge import services
    from wafaa import ai_config
    from wafaa.ai import confidence

    settings.OPENAI_API_KEY = ""
    settings.EMBEDDING_BACKEND = backend
    ai_config.reset_clients()
    client = bench_client(f"bench-eval-{set_name}-{backend}")
    client.languages = ["en", "ar", "fr", "es"]
    client.confidence_threshold = confidence.DEFAULT_THRESHOLD
    client.save(update_fields=["languages", "confidence_threshold"])
    faq = EVAL_DIR / f"{set_name}_faq.csv"
    questions = evaluation.parse_questions((EVAL_DIR / f"{set_name}_questions.csv").read_bytes())
    with tenant_context(client):
        upload = services.document_upload(
            client=client, content=faq.read_bytes(), filename=faq.name, enqueue=False
        )
        document = upload.document
        document.refresh_from_db()
        if document.status != "ready" or document.embedder != ai_config.get_embedder().name:
            if document.status == "ready":
                services.document_reindex(document=document, enqueue=False)
            assert services.document_ingest(document=document) == "ready"
        # One warm-up question: the local model loads on first use.
        evaluation.evaluate(client=client, questions=questions[:1])
        result = evaluation.evaluate(client=client, questions=questions)
    summary = result.summary()
    print(evaluation.format_table(summary, title=f"\n{set_name} / {backend} embedder"))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", default="after", help="name of this measurement")
    parser.add_argument("--embedders", default="local,hashing")
    options = parser.parse_args()
    setup_django()
    path = RESULTS / "answers.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    runs = previous.get("runs", {})
    runs[options.label] = {
        backend: {set_name: run(set_name, backend) for set_name in SETS}
        for backend in options.embedders.split(",")
    }
    write_results("answers", {"runs": runs})


if __name__ == "__main__":
    main()
