"""export_client / import_client: one client restored into a fresh database, row for row."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import uuid

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from tests.conftest import ROOT, inside


def _server_url(dbname: str) -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{dbname}"


@pytest.fixture
def fresh_database(worker_env):
    """A new, empty database on the same server, migrated by `manage.py bootstrap`."""
    name = f"restore_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_server_url("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {**worker_env, "DATABASE_URL": _server_url(name)}
    try:
        subprocess.run(
            [sys.executable, "manage.py", "bootstrap"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        yield name, env
    finally:
        with psycopg.connect(_server_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def busy_client(live, committed_client):
    """A client with knowledge (vectors), a conversation, a member, an API key, a channel."""
    from conversations import services
    from tenants.models import Membership
    from tests.conversations.helpers import add_faq_knowledge
    from tests.factories import ChannelAccountFactory
    from tests.tenants.factories import MembershipFactory, api_key_for

    account = ChannelAccountFactory(client=committed_client, external_id=str(uuid.uuid4().int)[:15])
    MembershipFactory(client=committed_client, role=Membership.Role.OWNER)
    api_key_for(committed_client)
    with inside(committed_client):
        add_faq_knowledge()
        from channels_app.providers import InboundMessage

        services.message_receive(
            account=account,
            inbound=InboundMessage(
                channel="whatsapp",
                account_external_id=account.external_id,
                timestamp=timezone.now(),
                external_id=f"wamid.{uuid.uuid4().hex}",
                contact_key="15550001111",
                wa_id="15550001111",
                contact_name="Layla",
                type="text",
                text="كم سعر الكابتشينو؟",
                raw={},
            ),
        )
    return committed_client


def _rows(url: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return [tuple(map(str, row)) for row in conn.execute(query, params).fetchall()]


def test_a_client_restores_into_a_fresh_database_with_identical_rows(
    busy_client, fresh_database, tmp_path
):
    name, env = fresh_database
    bundle = tmp_path / "client.tar.gz"
    out = io.StringIO()
    call_command("export_client", busy_client.slug, str(bundle), stdout=out)
    assert f"exported client '{busy_client.slug}'" in out.getvalue()

    done = subprocess.run(
        [sys.executable, "manage.py", "import_client", str(bundle)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    source, target = _server_url(connection.settings_dict["NAME"]), _server_url(name)
    schema = busy_client.schema_name
    tables = [
        row[0]
        for row in _rows(
            source,
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1",
            (schema,),
        )
    ]
    assert {"knowledge_chunk", "conversations_message", "conversations_contact"} <= set(tables)
    compared = 0
    for table in tables:
        query = f'SELECT * FROM "{schema}"."{table}" ORDER BY 1'
        before, after = _rows(source, query), _rows(target, query)
        assert before == after, table
        compared += len(before)
    assert compared > 10  # chunks, messages, contacts... really compared
    for table, column in [
        ("tenants_client", "id"),
        ("tenants_domain", "tenant_id"),
        ("tenants_membership", "client_id"),
        ("tenants_apikey", "client_id"),
        ("channels_app_channelaccount", "client_id"),
    ]:
        query = f"SELECT * FROM {table} WHERE {column} = %s ORDER BY 1"
        before = _rows(source, query, (busy_client.pk,))
        assert before and before == _rows(target, query, (busy_client.pk,)), table

    # The restored client works: its schema answers a vector search with the same ranking.
    query = (
        f'SELECT id FROM "{schema}".knowledge_chunk '
        f'ORDER BY embedding <=> (SELECT embedding FROM "{schema}".knowledge_chunk LIMIT 1) LIMIT 3'
    )
    assert _rows(source, query) == _rows(target, query)
    # New rows in the restored database do not collide with the imported ids.
    for table in ("conversations_contact", "conversations_message", "knowledge_chunk"):
        [(next_id, max_id)] = _rows(
            target,
            f"SELECT nextval(pg_get_serial_sequence('\"{schema}\".{table}', 'id')), "
            f'(SELECT max(id) FROM "{schema}".{table})',
        )
        assert int(next_id) > int(max_id), table


def test_an_import_over_an_existing_client_is_refused_and_changes_nothing(busy_client, tmp_path):
    bundle = tmp_path / "client.tar.gz"
    call_command("export_client", busy_client.slug, str(bundle), stdout=io.StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("import_client", str(bundle), stdout=io.StringIO())


def test_a_crafted_bundle_with_a_path_is_refused(live, tmp_path):
    bundle = tmp_path / "evil.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("../../etc/evil.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(CommandError, match="Unexpected entry"):
        call_command("import_client", str(bundle), stdout=io.StringIO())
    assert not (tmp_path.parent.parent / "etc" / "evil.csv").exists()


def test_exporting_an_unknown_client_says_so(live, tmp_path):
    with pytest.raises(CommandError, match="No client with slug 'nobody'"):
        call_command("export_client", "nobody", str(tmp_path / "x.tar.gz"))
