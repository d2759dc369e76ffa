"""With TENANT_LIMIT_SET_CALLS, a rolled-back SET never leaves a connection in the wrong schema."""

from __future__ import annotations

from django.db import IntegrityError, connection, transaction

from tests.conftest import inside


def _current_schema():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return cursor.fetchone()[0]


def test_savepoint_rollback_keeps_the_connection_in_the_client_schema(tenant_a, tenant_b):
    from conversations.models import Contact

    with inside(tenant_b):
        assert _current_schema() == tenant_b.schema_name
    with inside(tenant_a):
        try:
            with transaction.atomic():
                Contact.objects.create(channel="whatsapp", external_id="dup")
                Contact.objects.create(channel="whatsapp", external_id="dup")
        except IntegrityError:
            pass
        assert _current_schema() == tenant_a.schema_name
        Contact.objects.create(channel="whatsapp", external_id="after-rollback")
        assert Contact.objects.filter(external_id="after-rollback").exists()
    with inside(tenant_b):
        assert not Contact.objects.filter(external_id="after-rollback").exists()
