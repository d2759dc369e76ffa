"""Prepare the database for running or testing: migrations and demo data.

`make run` and `make test` call this; it is idempotent.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Migrate every schema (public, then each client), optionally create demo data."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="Create the demo client and data.")

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        call_command("migrate_schemas", interactive=False, verbosity=max(0, verbosity - 1))
        # The template new client schemas are copied from (tenants.cloning).
        from tenants.cloning import template_prepare

        template_prepare(verbosity=max(0, verbosity - 1))
        if options["demo"]:
            from backoffice.demo import demo_ensure

            for line in demo_ensure():
                self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("database ready"))
