"""`manage.py export_client <slug> <file.tar.gz>`: one client's schema and public rows."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tenants.portability import PortabilityError, client_export


class Command(BaseCommand):
    help = "Export one client (its schema and its rows in public) to a .tar.gz bundle."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("path", type=Path)

    def handle(self, *args, slug: str, path: Path, **options):
        try:
            manifest = client_export(slug=slug, path=path)
        except PortabilityError as exc:
            raise CommandError(str(exc)) from None
        rows = sum(manifest["rows"].values())
        self.stdout.write(
            f"exported client '{slug}': {rows} rows in {len(manifest['rows'])} tables to {path}"
        )
