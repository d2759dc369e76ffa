"""Attack (issue 10, finding 2), web side: hostile files refused by cheap facts, storing nothing.

A client admin (a valid account) uploads files made to hurt the process that parses them.
The web request only measures: size, type by magic bytes (whatever the name and declared
type say), a zip's central directory (entry count, declared sizes, ratios), a CSV's header
and its row count up to the plan's cap. Each bomb is a 4xx in the error envelope, no
document is stored and nothing is enqueued. Files that need parsing to judge (PDF pages,
XML elements) are accepted here and fail in the worker (test_upload_worker.py).
"""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge.models import Document
from tenants import selectors as tenant_selectors
from tenants.models import Membership
from tests.conftest import inside
from tests.security import crafted
from tests.tenants.factories import MembershipFactory, api_as_user

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def as_admin(tenant_a):
    user = MembershipFactory(client=tenant_a, role=Membership.Role.ADMIN).user
    return api_as_user(user, tenant_a)


def upload(api, client, name: str, data: bytes, content_type: str = DOCX_TYPE):
    file = SimpleUploadedFile(name, data, content_type=content_type)
    return api.post(
        f"/api/v1/clients/{client.pk}/knowledge/upload", {"file": file}, format="multipart"
    )


def assert_refused(response, status: int, code: str, client) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"] and error["request_id"]
    with inside(client):
        assert not Document.objects.exists()
    return error


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("handbook.docx", DOCX_TYPE),
        # The name and the declared type lie: the bytes say zip, and the zip is a bomb.
        ("notes.txt", "text/plain"),
        ("policy.pdf", "application/pdf"),
    ],
)
def test_a_1_mb_docx_bomb_is_refused_by_its_zip_directory(
    tenant_a, as_admin, django_capture_on_commit_callbacks, name, content_type
):
    bomb = crafted.docx_bomb()  # word/document.xml: 1 GiB of XML from ~1 MB
    assert len(bomb) < 1.1 * crafted.MIB

    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(as_admin, tenant_a, name, bomb, content_type)

    error = assert_refused(response, 422, "suspicious_compression", tenant_a)
    assert "word/document.xml" in error["message"]
    assert "1,024.0 MB" in error["message"]
    assert callbacks == []  # no ingestion enqueued


def test_the_issues_docx_of_millions_of_empty_paragraphs_is_refused(tenant_a, as_admin):
    data = crafted.docx_empty_paragraphs(2_900_000)
    assert len(data) < 300_000
    assert_refused(
        upload(as_admin, tenant_a, "tiny.docx", data), 422, "suspicious_compression", tenant_a
    )


def test_a_zip_of_too_many_entries_is_refused(tenant_a, as_admin):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", b"<w:document/>")
        for i in range(1001):
            archive.writestr(f"word/media/{i}.xml", b"")
    response = upload(as_admin, tenant_a, "many.docx", buffer.getvalue())
    error = assert_refused(response, 422, "too_many_zip_entries", tenant_a)
    assert "1,000" in error["message"]


def test_a_zip_declaring_more_than_the_uncompressed_cap_is_refused(tenant_a, as_admin, settings):
    settings.KNOWLEDGE_MAX_UNCOMPRESSED_BYTES = 4 * crafted.MIB
    # Ordinary ratios (one-digit paragraphs), but 8 MB once inflated.
    data = crafted.docx_tiny_paragraphs(250_000)
    response = upload(as_admin, tenant_a, "long.docx", data)
    error = assert_refused(response, 422, "too_large_uncompressed", tenant_a)
    assert "4.0 MB" in error["message"]


def test_a_csv_of_a_million_rows_is_refused_by_the_plan(tenant_a, as_admin):
    data = crafted.csv_rows(1_000_000)
    assert len(data) < tenant_a.max_upload_bytes  # passes the size limit: the rows refuse it

    response = upload(as_admin, tenant_a, "faq.csv", data, "text/csv")

    error = assert_refused(response, 422, "too_many_rows", tenant_a)
    assert f"{tenant_a.max_chunks_per_document:,} rows" in error["message"]


def test_a_csv_within_a_raised_plan_is_accepted(tenant_a, as_admin):
    tenant_a.max_chunks_per_document = 2000
    tenant_a.save(update_fields=["max_chunks_per_document"])
    tenant_selectors.client_cache_clear()

    response = upload(as_admin, tenant_a, "faq.csv", crafted.csv_rows(2000), "text/csv")

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"


def test_a_pdf_is_not_opened_by_the_web_request(tenant_a, as_admin, ingest_on_commit_eager):
    """50,000 pages: accepted as a PDF by its magic bytes, then failed by ingestion with its
    reason, which the API shows on the document."""
    response = ingest_on_commit_eager(
        lambda: upload(
            as_admin, tenant_a, "big.pdf", crafted.pdf_many_pages(50_000), "application/pdf"
        )
    )
    assert response.status_code == 202, response.content

    status = as_admin.get(response.json()["status_url"]).json()
    assert status["status"] == "failed"
    assert status["error_code"] == "too_many_pages"
    assert "more than 2,000 pages" in status["error"]
    assert status["chunks_total"] == 0


@pytest.fixture
def ingest_on_commit_eager(eager_tasks, django_capture_on_commit_callbacks):
    def run(send):
        with django_capture_on_commit_callbacks(execute=True):
            return send()

    return run
