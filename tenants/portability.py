"""One client's data out of a database and into another: `export_client` / `import_client`.

A client is its schema plus its rows in `public` (the client row, its domains, members and
their users, API keys, usage, channel accounts, and any other shared model with a foreign key
to the client). The bundle is a gzipped tar of CSV files made with PostgreSQL's COPY (vectors
travel as text), and a manifest with the row counts and the schema's migration state:

    manifest.json
    public/<table>.csv       the client's rows of each shared table (users: its members)
    schema/<table>.csv       every table of the client's schema

Secrets stay encrypted in the bundle exactly as stored (FIELD_ENCRYPTION_KEYS must hold their
key where the bundle is imported). The import refuses to overwrite: the client's slug, schema
and row ids must be free in the target database (a fresh database, or one the client was
deleted from), and the target must be migrated to the same release (the same client-schema
migrations). It builds the schema from the migrated template and loads every table in one
transaction: a failed import leaves nothing behind.

The models are found through the app registry, so this module names no app.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tarfile
import time
from pathlib import Path

import psycopg
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction

from tenants.cloning import TEMPLATE_SCHEMA, clone_template_into, template_ready
from tenants.models import Client

logger = logging.getLogger(__name__)
FORMAT = 1


class PortabilityError(Exception):
    """A bundle that cannot be made or imported; the message says what to do."""


def _shared_models_of_client() -> list[tuple[type[models.Model], models.ForeignKey]]:
    """(model, its foreign key to Client) for every shared model that belongs to a client."""
    client_only = set(settings.TENANT_APPS) - set(settings.SHARED_APPS)
    found = []
    for model in apps.get_models():
        if model is Client or model._meta.app_config.name in client_only:
            continue
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and field.related_model is Client:
                found.append((model, field))
                break
    return sorted(found, key=lambda item: item[0]._meta.db_table)


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _copy_out(query: str, params: list | None = None) -> tuple[bytes, int]:
    """CSV (with a header) of a query, and its row count."""
    with connection.cursor() as cursor:
        # COPY takes no parameters: bind them client-side (Django's psycopg cursor does so).
        sql = cursor.cursor.mogrify(query, params) if params else query
        buffer = io.BytesIO()
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                buffer.write(chunk)
    data = buffer.getvalue()
    rows = max(0, sum(1 for _ in csv.reader(io.StringIO(data.decode()))) - 1)
    return data, rows


def _copy_in(table: str, data: bytes) -> None:
    header = next(csv.reader(io.StringIO(data.decode().split("\n", 1)[0])), [])
    if not header:
        return
    columns = ", ".join(_quote(c) for c in header)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER)"
        ) as copy,
    ):
        copy.write(data)


def _schema_tables(schema: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY c.relname",
            [schema],
        )
        return [row[0] for row in cursor.fetchall()]


def _schema_migrations(schema: str) -> list[list[str]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {_quote(schema)}.django_migrations ORDER BY 1, 2")  # noqa: S608
        return [list(row) for row in cursor.fetchall()]


def client_export(*, slug: str, path: Path) -> dict:
    """Write the client's bundle to `path` (.tar.gz); returns the manifest."""
    client = Client.objects.filter(slug=slug).first()
    if client is None:
        raise PortabilityError(f"No client with slug '{slug}'.")
    connection.set_schema_to_public()
    files: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    # One snapshot for the whole bundle (REPEATABLE READ): rows written meanwhile, by a live
    # client's webhooks, are in all files or in none, so the bundle is consistent.
    if connection.in_atomic_block:
        raise PortabilityError("Export outside a transaction: it takes its own snapshot.")
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.isolation_level
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        manifest = _export_snapshot(client, files, counts)
    finally:
        raw.isolation_level = previous
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as bundle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(manifest["exported_at"])
            bundle.addfile(info, io.BytesIO(data))
    logger.info("client exported", extra={"client": slug, "tables": len(files) - 1})
    return manifest


def _export_snapshot(client: Client, files: dict[str, bytes], counts: dict[str, int]) -> dict:
    with transaction.atomic():
        client_table = _quote(Client._meta.db_table)
        files["public/tenants_client.csv"], counts["public.tenants_client"] = _copy_out(
            f"SELECT * FROM {client_table} WHERE id = %s",  # noqa: S608 - a quoted identifier
            [client.pk],
        )
        user_model = get_user_model()
        member_ids: set[int] = set()
        for model, client_fk in _shared_models_of_client():
            table = model._meta.db_table
            query = f"SELECT * FROM {_quote(table)} WHERE {_quote(client_fk.column)} = %s"  # noqa: S608
            files[f"public/{table}.csv"], counts[f"public.{table}"] = _copy_out(query, [client.pk])
            for field in model._meta.concrete_fields:
                if isinstance(field, models.ForeignKey) and field.related_model is user_model:
                    member_ids.update(
                        model.objects.filter(**{client_fk.name: client.pk})
                        .exclude(**{f"{field.attname}__isnull": True})
                        .values_list(field.attname, flat=True)
                    )
        user_table = user_model._meta.db_table
        files[f"public/{user_table}.csv"], counts[f"public.{user_table}"] = _copy_out(
            f"SELECT * FROM {_quote(user_table)} WHERE id = ANY(%s)",  # noqa: S608
            [sorted(member_ids)],
        )
        schema = client.schema_name
        for table in _schema_tables(schema):
            query = f"SELECT * FROM {_quote(schema)}.{_quote(table)}"  # noqa: S608
            files[f"schema/{table}.csv"], counts[f"schema.{table}"] = _copy_out(query)
        migrations = _schema_migrations(schema)
    return {
        "format": FORMAT,
        "slug": client.slug,
        "schema": schema,
        "client_id": client.pk,
        "exported_at": time.time(),
        "schema_migrations": migrations,
        "rows": counts,
        "user_table": user_table,
    }


def _read_bundle(path: Path) -> tuple[dict, dict[str, bytes]]:
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as bundle:
            for member in bundle.getmembers():
                # Only plain files with the names we write: no paths, links or devices.
                if not member.isfile() or member.name.count("/") > 1 or ".." in member.name:
                    raise PortabilityError(f"Unexpected entry in the bundle: {member.name!r}.")
                files[member.name] = bundle.extractfile(member).read()
    except (OSError, tarfile.TarError) as exc:
        raise PortabilityError(f"Not a client bundle: {exc}") from None
    try:
        manifest = json.loads(files.pop("manifest.json"))
    except (KeyError, ValueError):
        raise PortabilityError("The bundle has no readable manifest.json.") from None
    if manifest.get("format") != FORMAT:
        raise PortabilityError(f"Bundle format {manifest.get('format')} is not {FORMAT}.")
    return manifest, files


def _ids_in(data: bytes) -> list[int]:
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    return [int(row["id"]) for row in rows if row.get("id")]


def client_import(*, path: Path) -> dict:
    """Load a bundle made by `client_export` into this database; returns the manifest."""
    manifest, files = _read_bundle(path)
    slug, schema = manifest["slug"], manifest["schema"]
    connection.set_schema_to_public()
    if Client.objects.filter(slug=slug).exists():
        raise PortabilityError(f"A client '{slug}' already exists here; delete it first.")
    if not template_ready():
        raise PortabilityError("This database is not migrated: run `manage.py bootstrap` first.")
    if _schema_migrations(TEMPLATE_SCHEMA) != manifest["schema_migrations"]:
        raise PortabilityError(
            "The bundle comes from another release (its client-schema migrations differ from "
            "this database's): import it with the release that exported it, then upgrade."
        )
    user_model = get_user_model()
    user_table = manifest["user_table"]
    with transaction.atomic():
        for name, data in sorted(files.items()):
            kind, table = name.split("/", 1)[0], name.split("/", 1)[1].removesuffix(".csv")
            if kind != "public":
                continue
            ids = _ids_in(data)
            if table == user_table:
                # Users can belong to several clients: one already here (same id and username)
                # is kept as it is; an id taken by another user is a conflict.
                rows = list(csv.DictReader(io.StringIO(data.decode())))
                existing = dict(user_model.objects.filter(pk__in=ids).values_list("pk", "username"))
                clashes = [
                    row["id"]
                    for row in rows
                    if int(row["id"]) in existing and existing[int(row["id"])] != row["username"]
                ]
                if clashes:
                    raise PortabilityError(f"User ids {clashes} belong to other users here.")
            elif ids:
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT count(*) FROM {_quote(table)} WHERE id = ANY(%s)",  # noqa: S608
                        [ids],
                    )
                    if cursor.fetchone()[0]:
                        raise PortabilityError(
                            f"Rows of {table} with the bundle's ids already exist here."
                        )
        # The client row first, then the rows that point at it (foreign keys are checked at
        # commit: Django makes them DEFERRABLE INITIALLY DEFERRED).
        public = {
            name.split("/", 1)[1].removesuffix(".csv"): data
            for name, data in files.items()
            if name.startswith("public/")
        }
        _copy_in(_quote(Client._meta.db_table), public.pop(Client._meta.db_table))
        users = public.pop(user_table, None)
        if users is not None:
            # Through a scratch table, so the users already here are left out in SQL (a
            # round trip through Python's csv would turn empty strings into NULLs).
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE TEMP TABLE import_users (LIKE {_quote(user_table)}) ON COMMIT DROP"
                )
            _copy_in("import_users", users)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {_quote(user_table)} SELECT * FROM import_users u "  # noqa: S608
                    f"WHERE NOT EXISTS (SELECT 1 FROM {_quote(user_table)} a WHERE a.id = u.id)"
                )
        for table, data in sorted(public.items()):
            _copy_in(_quote(table), data)
        clone_template_into(schema)
        loaded = {
            name.split("/", 1)[1].removesuffix(".csv"): data
            for name, data in files.items()
            if name.startswith("schema/")
        }
        # The clone copies a few rows from the template (its migration records): the bundle's
        # own rows replace them, all tables at once (they reference each other).
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE "
                + ", ".join(f"{_quote(schema)}.{_quote(t)}" for t in _schema_tables(schema))
            )
        for table, data in sorted(loaded.items()):
            _copy_in(f"{_quote(schema)}.{_quote(table)}", data)
        _reset_sequences(schema, [*public, Client._meta.db_table, user_table])
    connection.set_schema_to_public()
    logger.info("client imported", extra={"client": slug})
    return manifest


def _reset_sequences(schema: str, public_tables: list[str]) -> None:
    """Identity sequences past the imported ids, so new rows never collide with them."""
    targets = [(schema, t) for t in _schema_tables(schema)] + [("public", t) for t in public_tables]
    with connection.cursor() as cursor:
        for owner, table in targets:
            qualified = f"{_quote(owner)}.{_quote(table)}"
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [qualified])
            row = cursor.fetchone()
            if not row or not row[0]:
                continue
            cursor.execute(
                f"SELECT setval(%s, COALESCE((SELECT max(id) FROM {qualified}), 0) + 1, false)",  # noqa: S608
                [row[0]],
            )
