"""Measure how well the bot answers a question set, for one client, without sending anything.

    python manage.py eval_answers --client demo questions.csv
    python manage.py eval_answers --client demo --knowledge faq.csv questions.jsonl --json out.json

Each question goes through the reply drafting (retrieval, confidence, LLM or extractive
answer) in the client's schema; nothing is stored or sent. Prints right-fact, abstain and
wrong-answer rates per language label, latencies and a suggested confidence threshold
(see conversations.evaluation). --knowledge uploads and indexes a file first (once: the same
bytes again are recognised).
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from conversations import evaluation
from tenants.models import Client


class Command(BaseCommand):
    help = "Run a question set (CSV or JSONL) through the reply drafting and print the rates."

    def add_arguments(self, parser):
        parser.add_argument("--client", required=True, help="the client's slug")
        parser.add_argument("questions", help="CSV or JSONL: question, expected, language")
        parser.add_argument("--knowledge", help="a knowledge file to upload and index first")
        parser.add_argument("--json", dest="json_path", help="also write the full results here")
        parser.add_argument(
            "--failures",
            action="store_true",
            help="list each failed question with why and the entries weighed first",
        )

    def handle(
        self, *args, client, questions, knowledge=None, json_path=None, failures=False, **options
    ):
        target = Client.objects.filter(slug=client).first()
        if target is None:
            raise CommandError(f"No client with slug {client!r}.")
        path = Path(questions)
        try:
            items = evaluation.parse_questions(path.read_bytes(), filename=path.name)
        except (OSError, evaluation.EvaluationFileError) as exc:
            raise CommandError(str(exc)) from None
        with tenant_context(target):
            if knowledge:
                self._index(target, Path(knowledge))
            result = evaluation.evaluate(client=target, questions=items)
        summary = result.summary()
        self.stdout.write(evaluation.format_table(summary, title=f"{target.slug}: {path.name}"))
        if failures:
            self.stdout.write(evaluation.format_failures(result.results))
        if json_path:
            Path(json_path).write_text(json.dumps(result.as_dict(), ensure_ascii=False, indent=1))

    def _index(self, client, path: Path) -> None:
        from knowledge import services

        upload = services.document_upload(
            client=client, content=path.read_bytes(), filename=path.name, enqueue=False
        )
        if upload.created or upload.document.status != "ready":
            outcome = services.document_ingest(document=upload.document)
            if outcome != "ready":
                raise CommandError(f"Indexing {path.name} ended {outcome!r}.")
