"""Re-encrypt every stored secret under the first key of FIELD_ENCRYPTION_KEYS.

Step 3 of a key rotation (docs/deploy.md): after the new key is prepended and deployed, this
rewrites every EncryptedTextField value of every model with MultiFernet.rotate(), row by row,
without ever holding the plain text longer than one row. `--check` only counts the values
still under an older key (0 means the old key can be removed).

Models are found through the app registry, so the command names no app; secrets in client
schemas (none today) would need a schema loop, and the command refuses to miss them silently.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from wafaa.crypto import EncryptedTextField, is_current, rotate


def encrypted_fields():
    """(model, field) for every encrypted field of every installed model."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field


class Command(BaseCommand):
    help = "Re-encrypt stored secrets under the first key of FIELD_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="only count values still under an older key"
        )

    def handle(self, *args, check: bool = False, **options):
        client_only = set(settings.TENANT_APPS) - set(settings.SHARED_APPS)
        stale_total = rotated_total = 0
        for model, field in encrypted_fields():
            if model._meta.app_config.name in client_only:
                raise CommandError(
                    f"{model._meta.label}.{field.name} lives in client schemas; "
                    "this command only walks the public schema"
                )
            table = connection.ops.quote_name(model._meta.db_table)
            column = connection.ops.quote_name(field.column)
            pk = connection.ops.quote_name(model._meta.pk.column)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    # Raw ciphertexts: the field's own converter would hand us plain text.
                    cursor.execute(
                        f"SELECT {pk}, {column} FROM {table} "  # noqa: S608 - quoted identifiers
                        f"WHERE {column} <> '' FOR UPDATE"
                    )
                    rows = cursor.fetchall()
                stale = [(key, token) for key, token in rows if not is_current(token)]
                stale_total += len(stale)
                if check:
                    self.stdout.write(f"{model._meta.label}.{field.name}: {len(stale)} stale")
                    continue
                with connection.cursor() as cursor:
                    for key, token in stale:
                        cursor.execute(
                            f"UPDATE {table} SET {column} = %s WHERE {pk} = %s",  # noqa: S608
                            [rotate(token), key],
                        )
                rotated_total += len(stale)
                self.stdout.write(f"{model._meta.label}.{field.name}: {len(stale)} re-encrypted")
        if check:
            self.stdout.write(f"{stale_total} values still under an older key")
        else:
            self.stdout.write(f"{rotated_total} values re-encrypted under the first key")
