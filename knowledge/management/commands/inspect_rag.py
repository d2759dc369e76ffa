"""See what retrieval returns for a question: `python manage.py inspect_rag --client demo "..."`.

Prints the chunks the bot would be given, best first, with the fused (RRF) score, the cosine
similarity of the vector hit, the keyword score, the document and the start of the text.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from knowledge import services
from tenants.models import Client
from wafaa.ai_config import get_embedder


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = "Show the knowledge chunks retrieved for a question, with their scores."

    def add_arguments(self, parser):
        parser.add_argument("question")
        parser.add_argument("--client", required=True, help="client slug")
        parser.add_argument("-k", type=int, default=5, help="number of chunks (default 5)")

    def handle(self, *args, **options):
        client = Client.objects.filter(slug=options["client"]).first()
        if client is None:
            raise CommandError(f"No client with slug {options['client']!r}.")
        embedder = get_embedder()
        with tenant_context(client):
            results = services.retrieve(options["question"], k=options["k"], embedder=embedder)
        self.stdout.write(f"client {client.slug} · embedder {embedder.name} · k={options['k']}")
        if not results:
            self.stdout.write("no chunks found (no ready documents, or a blank question)")
            return
        header = f"{'#':>2}  {'fused':>7}  {'sim':>6}  {'kw':>6}  {'document':<24}  text"
        self.stdout.write(header)
        self.stdout.write("-" * (len(header) + 60))
        for rank, chunk in enumerate(results, start=1):
            title = chunk.document_title[:24]
            text = " ".join(chunk.text.split())[:100]
            self.stdout.write(
                f"{rank:>2}  {chunk.score:>7.4f}  {_num(chunk.similarity):>6}  "
                f"{_num(chunk.keyword_rank):>6}  {title:<24}  {text}"
            )
