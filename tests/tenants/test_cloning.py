"""Client schemas copied from the migrated template are the same as migrated ones."""

from __future__ import annotations

import pytest
from django.db import connection

from tenants import cloning
from tenants.services import client_create


def _structure(schema: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "a.attidentity FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
            [schema],
        )
        columns = sorted(cursor.fetchall())
        cursor.execute(
            "SELECT cl.relname, con.conname, con.contype FROM pg_constraint con "
            "JOIN pg_class cl ON cl.oid = con.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "WHERE n.nspname = %s AND con.contype <> 'n'",
            [schema],
        )
        constraints = sorted(cursor.fetchall())
        cursor.execute(
            "SELECT indexname, replace(indexdef, %s, '') FROM pg_indexes WHERE schemaname = %s",
            [f"{schema}.", schema],
        )
        indexes = sorted(cursor.fetchall())
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')
        migrations = sorted(cursor.fetchall())
    return {
        "columns": columns,
        "constraints": constraints,
        "indexes": indexes,
        "migrations": migrations,
    }


def test_the_template_is_ready_in_the_test_database(db):
    assert cloning.template_ready()


@pytest.mark.django_db
def test_a_cloned_client_schema_matches_the_migrated_template():
    client = client_create(name="Clone check", slug="clone-check")
    cloned = _structure(client.schema_name)
    template = _structure(cloning.TEMPLATE_SCHEMA)
    assert cloned == template
    assert ("knowledge_chunk", "embedding", "vector(512)", False, "") in cloned["columns"]
    assert any(name == "chunk_embedding_hnsw" for name, _ in cloned["indexes"])


def test_a_cloned_schema_works_for_the_orm(tenant_a):
    from conversations.models import Contact
    from tests.conftest import inside

    with inside(tenant_a):
        first = Contact.objects.create(channel="whatsapp", external_id="clone-1")
        second = Contact.objects.create(channel="whatsapp", external_id="clone-2")
    assert second.pk > first.pk  # the identity sequence is the schema's own
