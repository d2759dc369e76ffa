"""Re-index documents after the embedder changed: `python manage.py reembed --client demo`.

Vectors of different models are not comparable, so retrieval only vector-searches chunks
made by the current embedder (the keyword search still finds the others). This command
re-ingests every document whose index was made by another embedder (or all with --force):
queued on the ingest queue by default, or here and now with --sync. Each document keeps
answering from its old chunks until its new ones replace them.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from knowledge import services
from tenants.models import Client
from wafaa.ai.embeddings import EmbeddingTransientError
from wafaa.ai_config import get_embedder


class Command(BaseCommand):
    help = (
        "Re-ingest documents whose chunks were embedded by another embedder than the current one."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--client", help="client slug")
        target.add_argument("--all", action="store_true", help="every client")
        parser.add_argument("--force", action="store_true", help="re-ingest every document")
        parser.add_argument(
            "--sync", action="store_true", help="ingest in this process instead of the queue"
        )
        parser.add_argument("--dry-run", action="store_true", help="only list what would run")

    def handle(self, *args, **options):
        clients = Client.objects.order_by("pk")
        if options["client"]:
            clients = clients.filter(slug=options["client"])
            if not clients.exists():
                raise CommandError(f"No client with slug {options['client']!r}.")
        embedder = get_embedder()
        self.stdout.write(f"current embedder: {embedder.name}")
        total = 0
        for client in clients:
            with tenant_context(client):
                documents = list(
                    services.documents_needing_reembed(
                        embedder_name=embedder.name, force=options["force"]
                    )
                )
                for document in documents:
                    self._one(document, embedder, options)
            total += len(documents)
            self.stdout.write(f"{client.slug}: {len(documents)} document(s)")
        verb = (
            "would be re-ingested"
            if options["dry_run"]
            else "re-ingested"
            if options["sync"]
            else "queued"
        )
        self.stdout.write(self.style.SUCCESS(f"{total} document(s) {verb}"))

    def _one(self, document, embedder, options):
        label = (
            f"  {document.title[:60]} ({document.embedder or 'never indexed'}, {document.status})"
        )
        if options["dry_run"]:
            self.stdout.write(label)
            return
        document = services.document_reindex(document=document, enqueue=not options["sync"])
        if not options["sync"]:
            self.stdout.write(f"{label}: queued")
            return
        try:
            outcome = services.document_ingest(document=document, embedder=embedder)
        except EmbeddingTransientError as exc:
            services.document_reindex(document=document)  # leave it to the queue
            outcome = f"queued ({exc.message})"
        self.stdout.write(f"{label}: {outcome}")
