"""Per-client counts and the isolation invariants; exits 1 when an invariant is broken.

    python manage.py tenant_diagnostics [--client slug]

Invariants: no client tables in `public`; every client's schema exists and has every tenant
migration applied; the `vector` extension lives in `public`.
"""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from django_tenants.utils import schema_exists, tenant_context

from channels_app.models import ChannelAccount
from tenants.models import Client


def tenant_tables() -> set[str]:
    tables = set()
    for label in settings.TENANT_APPS:
        app_label = label.rsplit(".", 1)[-1]
        if label in settings.SHARED_APPS:
            continue
        for model in apps.get_app_config(app_label).get_models():
            tables.add(model._meta.db_table)
    return tables


def tenant_migrations() -> set[tuple[str, str]]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    labels = {label.rsplit(".", 1)[-1] for label in settings.TENANT_APPS}
    return {key for key in loader.disk_migrations if key[0] in labels}


class Command(BaseCommand):
    help = "Counts per client and checks of the tenant isolation invariants."

    def add_arguments(self, parser):
        parser.add_argument("--client", help="only this client slug")

    def handle(self, *args, **options):
        problems: list[str] = []
        with connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            leaked = tenant_tables() & {row[0] for row in cursor.fetchall()}
            cursor.execute(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'vector'"
            )
            vector = cursor.fetchone()
        if leaked:
            problems.append(f"client tables in public: {', '.join(sorted(leaked))}")
        if not vector or vector[0] != "public":
            problems.append(
                f"vector extension not in public ({vector[0] if vector else 'missing'})"
            )
        expected = tenant_migrations()
        since = timezone.now() - timedelta(hours=24)
        clients = Client.objects.order_by("slug")
        if options["client"]:
            clients = clients.filter(slug=options["client"])
        header = f"{'client':24} {'status':9} {'docs':>5} {'chunks':>7} {'convs':>6} {'msgs24h':>8} {'handoff':>7} {'failed':>6}  channels (last seen)"
        self.stdout.write(header)
        for client in clients:
            if not schema_exists(client.schema_name):
                problems.append(f"{client.slug}: schema {client.schema_name} is missing")
                continue
            with tenant_context(client):
                from conversations.models import Conversation, Message
                from knowledge.models import Chunk, Document

                with connection.cursor() as cursor:
                    cursor.execute("SELECT app, name FROM django_migrations")
                    applied = set(cursor.fetchall())
                missing = expected - applied
                if missing:
                    problems.append(
                        f"{client.slug}: {len(missing)} tenant migration(s) not applied"
                    )
                row = (
                    Document.objects.count(),
                    Chunk.objects.count(),
                    Conversation.objects.count(),
                    Message.objects.filter(created_at__gte=since).count(),
                    Conversation.objects.filter(mode="handoff").count(),
                    Message.objects.filter(
                        direction="out", status="failed", created_at__gte=since
                    ).count(),
                )
            channels = (
                ", ".join(
                    f"{a.kind}:{a.external_id} ({a.last_seen_at:%Y-%m-%d %H:%M} )"
                    if a.last_seen_at
                    else f"{a.kind}:{a.external_id} (never)"
                    for a in ChannelAccount.objects.filter(client=client)
                )
                or "-"
            )
            self.stdout.write(
                f"{client.slug:24} {client.status:9} {row[0]:>5} {row[1]:>7} {row[2]:>6} {row[3]:>8} "
                f"{row[4]:>7} {row[5]:>6}  {channels}"
            )
        if problems:
            for problem in problems:
                self.stderr.write(self.style.ERROR(f"INVARIANT BROKEN: {problem}"))
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS("isolation invariants hold"))
