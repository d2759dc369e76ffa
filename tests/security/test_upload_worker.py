"""Attack (issue 10, findings 2 and 3), worker side: files that pass the web's cheap checks
are failed by the real ingest worker with their reason, and the worker answers the next job.

Through a real Celery worker (a separate process on the real broker and database): each
hostile document is committed and its ingestion enqueued as an upload would; the worker
extracts it in a child process under caps and a memory ceiling. Each must end `failed` with
a stable `error_code` and a message, with no chunk stored; then an ordinary FAQ is indexed
by the same worker, which never restarted.
"""

from __future__ import annotations

import hashlib

import pytest

from knowledge import services
from knowledge.demo_data import FAQ_CSV
from knowledge.models import Chunk, Document
from tests.conftest import inside
from tests.knowledge.test_ingest_worker import wait_for_status
from tests.security import crafted


def store_bypassing_the_web(client, name: str, kind: str, data: bytes) -> Document:
    """A document stored without the upload's checks (as one stored before they existed,
    or by a future bug): the worker must hold on its own."""
    from django.db import connection

    from knowledge.tasks import document_ingest_task

    with inside(client):
        document = Document.objects.create(
            title=name,
            source=Document.Source.UPLOAD,
            original_filename=name,
            kind=kind,
            size_bytes=len(data),
            checksum=hashlib.sha256(data).hexdigest(),
            content=data,
        )
        document_ingest_task.apply_async(
            (str(document.pk),), headers={"_schema_name": connection.schema_name}
        )
    return document


@pytest.mark.slow
def test_hostile_documents_fail_with_their_reason_and_the_worker_goes_on(
    celery_worker_process, live, committed_client
):
    # (The worker first: it sets up the test database, which the committed client needs.)
    pid = celery_worker_process.proc.pid
    uploads = {
        # Ordinary compression ratios, but 4 M XML elements.
        "tiny_paragraphs.docx": ("too_many_xml_elements", crafted.docx_tiny_paragraphs()),
        "laughs.docx": ("xml_forbidden", crafted.docx_billion_laughs()),
        # The directory says 10 kB; the data inflates to 256 MB: zipfile stops at the
        # declared size and the CRC check fails.
        "lying.docx": ("invalid_docx", crafted.zip_with_lying_sizes()),
        "pages.pdf": ("too_many_pages", crafted.pdf_many_pages(50_000)),
        # /Count says 1: the pages are counted, not believed.
        "lying_count.pdf": ("too_many_pages", crafted.pdf_many_pages(5_000, declared=1)),
    }
    documents = {}
    with inside(committed_client):
        for name, (_, data) in uploads.items():
            result = services.document_upload(client=committed_client, content=data, filename=name)
            assert result.created  # each passes the web's cheap checks
            documents[name] = result.document
    # The 1 GiB bomb, stored without the web's checks: the worker checks the directory too.
    bomb = store_bypassing_the_web(committed_client, "bomb.docx", "docx", crafted.docx_bomb())
    uploads["bomb.docx"] = ("suspicious_compression", b"")
    documents["bomb.docx"] = bomb

    for name, document in documents.items():
        failed = wait_for_status(committed_client, document.pk, {"ready", "failed"}, timeout=90)
        assert failed.status == Document.Status.FAILED, name
        assert failed.error_code == uploads[name][0], (name, failed.error)
        assert failed.error
    with inside(committed_client):
        assert not Chunk.objects.exists()

    # The same worker process, alive, answers the next job.
    with inside(committed_client):
        result = services.document_upload(
            client=committed_client, content=FAQ_CSV.encode(), filename="faq.csv"
        )
    ready = wait_for_status(committed_client, result.document.pk, {"ready", "failed"}, timeout=60)
    assert ready.status == Document.Status.READY, ready.error
    assert celery_worker_process.proc.poll() is None
    assert celery_worker_process.proc.pid == pid
    log = celery_worker_process.output()
    assert "WorkerLostError" not in log
    assert "MemoryError" not in log  # the ceiling is the child's, not the worker's
    # The second line: a pool process grown past this is replaced after its task.
    assert "ingest pool processes are replaced after a task past 1024 MB" in log
