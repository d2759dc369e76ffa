"""Ingestion through a real Celery worker (a separate process on the real broker and database).

The upload is committed, so its task is sent on commit to the `ingest` queue; the worker runs
it in the client's schema, and the document becomes `ready` with chunks that retrieval finds.
"""

from __future__ import annotations

import time

import pytest

from knowledge import services
from knowledge.demo_data import FAQ_CSV
from knowledge.models import Chunk, Document
from tests.conftest import inside


def wait_for_status(client, document_id, statuses, timeout=30.0) -> Document:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with inside(client):
            document = Document.objects.defer("content").get(pk=document_id)
        if document.status in statuses:
            return document
        time.sleep(0.1)
    raise AssertionError(f"document still {document.status} after {timeout}s: {document.error}")


@pytest.mark.slow
def test_an_upload_is_indexed_by_a_real_worker(live, committed_client, celery_worker_process):
    with inside(committed_client):
        result = services.document_upload(
            client=committed_client, content=FAQ_CSV.encode(), filename="faq.csv", title="FAQ"
        )
    assert result.document.status == Document.Status.PENDING

    document = wait_for_status(committed_client, result.document.pk, {"ready", "failed"})
    assert document.status == Document.Status.READY, document.error
    with inside(committed_client):
        assert Chunk.objects.filter(document_id=document.pk).count() == document.chunks_total > 0
        best = services.retrieve("wifi password", k=1)[0]
    assert best.metadata["question"] == "Do you have wifi?"
    assert "document_ingest_task" in celery_worker_process.output()
