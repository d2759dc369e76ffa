"""`manage.py import_client <file.tar.gz>`: load a bundle made by export_client."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tenants.portability import PortabilityError, client_import


class Command(BaseCommand):
    help = "Import one client from an export_client bundle (into a database without it)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)

    def handle(self, *args, path: Path, **options):
        try:
            manifest = client_import(path=path)
        except PortabilityError as exc:
            raise CommandError(str(exc)) from None
        rows = sum(manifest["rows"].values())
        self.stdout.write(f"imported client '{manifest['slug']}': {rows} rows")
