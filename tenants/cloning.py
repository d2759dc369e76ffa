"""Fast client schemas: copy a migrated template schema instead of replaying migrations.

`manage.py bootstrap` keeps the schema `tenant_template` migrated like every client schema.
A new client's schema is then built from it in one transaction: each table `LIKE` its template
table (columns with their exact types, `vector(512)` included, defaults, identity), then the
template's constraints and indexes under their own names (so later migrations that name them
work on cloned schemas too), then the rows of `django_migrations` and `django_content_type`.

django-tenants has a schema cloner of its own (TENANT_BASE_SCHEMA), but its clone_schema()
drops the dimensions of pgvector columns, which the HNSW index needs. When the template is
missing or behind the migrations on disk, clients are created by running the migrations.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader

logger = logging.getLogger(__name__)

TEMPLATE_SCHEMA = "tenant_template"
COPIED_ROWS = ("django_migrations", "django_content_type")


@functools.cache
def tenant_migrations_on_disk() -> frozenset[tuple[str, str]]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    labels = {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS}
    return frozenset(key for key in loader.disk_migrations if key[0] in labels)


def _template_migrations() -> frozenset[tuple[str, str]] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f'"{TEMPLATE_SCHEMA}".django_migrations'])
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(f'SELECT app, name FROM "{TEMPLATE_SCHEMA}".django_migrations')  # noqa: S608 - a constant
        return frozenset(cursor.fetchall())


def template_ready() -> bool:
    """The template exists and has every tenant migration on disk applied."""
    applied = _template_migrations()
    return applied is not None and tenant_migrations_on_disk() <= applied


def template_prepare(verbosity: int = 0) -> None:
    """Create or migrate the template schema (bootstrap runs this after migrate_schemas)."""
    from django.core.management import call_command

    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{TEMPLATE_SCHEMA}"')
    call_command(
        "migrate_schemas",
        tenant=True,
        schema_name=TEMPLATE_SCHEMA,
        interactive=False,
        verbosity=verbosity,
    )
    connection.set_schema_to_public()


def _catalog(cursor, query: str) -> list[tuple]:
    # With only the template on the search path, the definitions come back unqualified, so
    # they apply as they are to the new schema.
    cursor.execute(f'SET search_path = "{TEMPLATE_SCHEMA}"')
    cursor.execute(query, [TEMPLATE_SCHEMA])
    return cursor.fetchall()


# The template's structure, read once per process for each state of its migrations: the
# catalog queries grow with the number of schemas in the database, the structure does not.
_structure_cache: dict[frozenset | None, tuple[list, list, list]] = {}


def _template_structure(cursor) -> tuple[list, list, list]:
    applied = _template_migrations()
    if applied not in _structure_cache:
        _structure_cache.clear()
        _structure_cache[applied] = _read_template_structure(cursor)
    return _structure_cache[applied]


def _read_template_structure(cursor) -> tuple[list, list, list]:
    tables = [
        row[0]
        for row in _catalog(
            cursor,
            (
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY c.relname"
            ),
        )
    ]
    constraints = _catalog(
        cursor,
        (
            "SELECT cl.relname, con.conname, con.contype, pg_get_constraintdef(con.oid) "
            "FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "WHERE n.nspname = %s AND con.contype IN ('p', 'u', 'c', 'f', 'x') "
            # Primary and unique keys first: foreign keys need them.
            "ORDER BY CASE con.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'f' THEN 3 ELSE 2 END, "
            "cl.relname, con.conname"
        ),
    )
    indexes = _catalog(
        cursor,
        (
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace "
            "WHERE n.nspname = %s AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid) ORDER BY 1"
        ),
    )
    return tables, constraints, indexes


def clone_template_into(schema_name: str) -> None:
    """Build `schema_name` as a copy of the template's structure (call inside a transaction)."""
    quoted = f'"{schema_name}"'
    with connection.cursor() as cursor:
        tables, constraints, indexes = _template_structure(cursor)
        cursor.execute(f"CREATE SCHEMA {quoted}")
        cursor.execute(f"SET search_path = {quoted}, public")
        for table in tables:
            cursor.execute(
                f'CREATE TABLE {quoted}."{table}" (LIKE "{TEMPLATE_SCHEMA}"."{table}" '
                "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE)"
            )
        for table, name, _kind, definition in constraints:
            cursor.execute(f'ALTER TABLE {quoted}."{table}" ADD CONSTRAINT "{name}" {definition}')
        for (definition,) in indexes:
            # pg_get_indexdef names the table with its schema whatever the search path.
            on_template = f" ON {TEMPLATE_SCHEMA}."
            if on_template not in definition:
                raise RuntimeError(f"unexpected index definition: {definition}")
            cursor.execute(definition.replace(on_template, f" ON {quoted}.", 1))
        for table in COPIED_ROWS:
            if table in tables:
                # Identifiers only: the schema name passed django-tenants' check, the table
                # names come from our own list.
                copy = f'INSERT INTO {quoted}."{table}" SELECT * FROM "{TEMPLATE_SCHEMA}"."{table}"'  # noqa: S608
                cursor.execute(copy)
                max_id = f'(SELECT max(id) FROM {quoted}."{table}")'  # noqa: S608
                restart = f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE({max_id}, 0) + 1, false)"
                cursor.execute(restart, [f'{quoted}."{table}"'])
        cursor.execute("SET search_path = public")
    connection.set_schema_to_public()
    logger.info("client schema cloned from the template", extra={"schema": schema_name})
