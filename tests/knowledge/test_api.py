"""Knowledge API: every format through the upload endpoint, every bad input refused with the
right status and code (and nothing stored), dedupe, plan limits, roles, list, detail, delete,
reindex and search. Requests go through the real JWT login and the client-scoped base view.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge import services
from knowledge.models import Chunk, Document
from tenants import selectors as tenant_selectors
from tenants.models import Membership
from tests.conftest import inside
from tests.tenants.factories import MembershipFactory, api_as_user, reset_api_state

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def clean_api_state(redis_client):
    reset_api_state(redis_client)
    yield
    reset_api_state(redis_client)


@pytest.fixture
def as_admin(tenant_a):
    user = MembershipFactory(client=tenant_a, role=Membership.Role.ADMIN).user
    return api_as_user(user, tenant_a)


@pytest.fixture
def as_agent(tenant_a):
    user = MembershipFactory(client=tenant_a, role=Membership.Role.AGENT).user
    return api_as_user(user, tenant_a)


@pytest.fixture
def ingest_on_commit(eager_tasks, django_capture_on_commit_callbacks):
    """Run the ingestion task (in this process) when the upload's transaction commits."""

    def run(send):
        with django_capture_on_commit_callbacks(execute=True):
            return send()

    return run


def base(client) -> str:
    return f"/api/v1/clients/{client.pk}/knowledge"


def post_file(api, client, name: str, data: bytes | None = None, **fields):
    data = (FIXTURES / name).read_bytes() if data is None else data
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return api.post(f"{base(client)}/upload", {"file": upload, **fields}, format="multipart")


def stored(client) -> int:
    with inside(client):
        return Document.objects.count()


def add_ready_document(client, text: str, title: str) -> Document:
    with inside(client):
        document = services.document_upload(
            client=client, content=text.encode(), filename="faq.csv", title=title, enqueue=False
        ).document
        services.document_ingest(document=document)
        return document


FAQ = "question,answer\nDo you have wifi?,Yes: the network is DemoCoffee.\nDo you deliver?,Yes."


# ---- upload ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("faq.txt", "txt"),
        ("arabic_utf16.txt", "txt"),
        ("guide.md", "md"),
        ("page.html", "html"),
        ("policy.pdf", "pdf"),
        ("handbook.docx", "docx"),
        ("faq.csv", "csv"),
    ],
)
def test_each_format_is_uploaded_then_indexed(tenant_a, as_admin, ingest_on_commit, name, kind):
    response = ingest_on_commit(lambda: post_file(as_admin, tenant_a, name))

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["kind"] == kind
    assert body["status"] == "pending"
    assert body["duplicate"] is False
    assert body["status_url"].endswith(f"/knowledge/documents/{body['id']}")
    assert response["Location"] == body["status_url"]

    status = as_admin.get(body["status_url"]).json()
    assert status["status"] == "ready", status
    assert status["chunks_total"] == status["chunks_done"] > 0
    assert status["progress"] == 1.0
    with inside(tenant_a):
        document = Document.objects.get(pk=body["id"])
        assert bytes(document.content) == (FIXTURES / name).read_bytes()
        assert Chunk.objects.filter(document=document).count() == status["chunks_total"]


def test_text_can_be_sent_as_json(tenant_a, as_admin):
    response = as_admin.post(
        f"{base(tenant_a)}/upload",
        {"title": "Hours", "text": "We open every day at 8am."},
        format="json",
    )
    assert response.status_code == 202, response.content
    assert response.json()["source"] == "text"
    assert response.json()["title"] == "Hours"
    assert response.json()["kind"] == "txt"


def test_csv_warnings_about_skipped_rows_are_shown_after_ingestion(
    tenant_a, as_admin, ingest_on_commit
):
    response = ingest_on_commit(lambda: post_file(as_admin, tenant_a, "faq.csv"))
    assert response.status_code == 202
    assert response.json()["warnings"] == []  # the rows are read by the ingest worker
    status = as_admin.get(response.json()["status_url"]).json()
    assert status["status"] == "ready"
    assert any("skipped" in warning for warning in status["warnings"])


@pytest.mark.parametrize(
    ("name", "data", "code", "status"),
    [
        ("empty.txt", b"", "empty_file", 400),
        ("blank.txt", b"  \n\n ", "empty_file", 400),
        ("garbage.txt", None, "not_text", 400),
        ("renamed_zip.docx", None, "invalid_docx", 400),
        ("bad_columns.csv", None, "csv_missing_columns", 400),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "unsupported_type", 415),
        ("slides.pptx", b"PK\x03\x04 not really a zip", "unsupported_type", 415),
        ("notes.rtf", b"{\\rtf1 hello}", "unsupported_type", 415),
    ],
)
def test_bad_uploads_are_refused_with_their_code_and_nothing_is_stored(
    tenant_a, as_admin, name, data, code, status
):
    response = post_file(as_admin, tenant_a, name, data)

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]  # the extraction's actionable message
    assert error["request_id"]
    assert stored(tenant_a) == 0


def test_text_that_is_blank_is_refused(tenant_a, as_admin):
    response = as_admin.post(
        f"{base(tenant_a)}/upload", {"title": "Nothing", "text": "   "}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_file"


@pytest.mark.parametrize(
    "body",
    [{}, {"title": "No text"}, {"text": "A text without a title"}],
)
def test_upload_needs_a_file_or_a_titled_text(tenant_a, as_admin, body):
    response = as_admin.post(f"{base(tenant_a)}/upload", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_file_and_text_together_are_refused(tenant_a, as_admin):
    upload = SimpleUploadedFile("a.txt", b"hello there")
    response = as_admin.post(
        f"{base(tenant_a)}/upload", {"file": upload, "text": "hi", "title": "x"}, format="multipart"
    )
    assert response.status_code == 400
    assert stored(tenant_a) == 0


def test_upload_over_the_plan_size_is_413_in_the_envelope(tenant_a, as_admin):
    tenant_a.max_upload_bytes = 2048
    tenant_a.save(update_fields=["max_upload_bytes"])
    tenant_selectors.client_cache_clear()

    response = post_file(as_admin, tenant_a, "big.txt", b"word " * 1000)  # 5,000 bytes
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "this plan accepts files up to" in response.json()["error"]["message"]
    assert stored(tenant_a) == 0

    # Far over the limit: refused from the Content-Length, before the body is parsed.
    response = post_file(as_admin, tenant_a, "huge.txt", b"word " * 40_000)
    assert response.status_code == 413
    assert stored(tenant_a) == 0


def test_plan_document_limit_is_403_plan_limit(tenant_a, as_admin):
    tenant_a.max_documents = 1
    tenant_a.save(update_fields=["max_documents"])
    tenant_selectors.client_cache_clear()

    assert post_file(as_admin, tenant_a, "faq.txt").status_code == 202
    response = post_file(as_admin, tenant_a, "guide.md")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "plan_limit"
    assert stored(tenant_a) == 1


def test_same_file_twice_returns_the_existing_document(tenant_a, as_admin):
    first = post_file(as_admin, tenant_a, "faq.txt")
    second = post_file(as_admin, tenant_a, "faq.txt", title="Another title")

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["duplicate"] is True
    assert stored(tenant_a) == 1


# ---- roles -----------------------------------------------------------------------------------


def test_agent_can_read_and_search_but_not_change_knowledge(tenant_a, as_agent):
    document = add_ready_document(tenant_a, FAQ, "FAQ")
    url = f"{base(tenant_a)}/documents/{document.pk}"

    assert as_agent.get(f"{base(tenant_a)}/documents").status_code == 200
    assert as_agent.get(url).status_code == 200
    assert as_agent.get(f"{base(tenant_a)}/search", {"q": "wifi"}).status_code == 200
    assert post_file(as_agent, tenant_a, "faq.txt").status_code == 403
    assert as_agent.delete(url).status_code == 403
    assert as_agent.post(f"{url}/reindex").status_code == 403
    assert stored(tenant_a) == 1


# ---- list, detail, delete, reindex -----------------------------------------------------------


def test_list_is_paginated_with_status_and_progress_in_constant_queries(tenant_a, as_admin):
    add_ready_document(tenant_a, FAQ, "FAQ")
    as_admin.get(f"{base(tenant_a)}/documents")  # warms the per-process client cache
    with CaptureQueriesContext(connection) as one:
        response = as_admin.get(f"{base(tenant_a)}/documents")
    for i in range(4):
        add_ready_document(tenant_a, f"question,answer\nQ{i}?,A{i}.", f"Doc {i}")
    with CaptureQueriesContext(connection) as five:
        response = as_admin.get(f"{base(tenant_a)}/documents", {"page_size": 2})

    body = response.json()
    assert body["count"] == 5
    assert len(body["results"]) == 2
    assert {"status", "progress", "chunks_total", "chunks_done", "error"} <= set(body["results"][0])
    assert "content" not in body["results"][0]
    assert len(five.captured_queries) == len(one.captured_queries)
    # The stored files are never read to list documents.
    assert not any('"content"' in q["sql"] for q in five.captured_queries)


def test_list_filters_by_status(tenant_a, as_admin):
    add_ready_document(tenant_a, FAQ, "FAQ")
    post_file(as_admin, tenant_a, "faq.txt")
    body = as_admin.get(f"{base(tenant_a)}/documents", {"status": "pending"}).json()
    assert [d["status"] for d in body["results"]] == ["pending"]


def test_unknown_document_is_404(tenant_a, as_admin):
    url = f"{base(tenant_a)}/documents/00000000-0000-0000-0000-000000000000"
    response = as_admin.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_document_of_another_client_is_404_under_this_clients_url(tenant_a, tenant_b, as_admin):
    other = add_ready_document(tenant_b, FAQ, "B's FAQ")
    url = f"{base(tenant_a)}/documents/{other.pk}"
    assert as_admin.get(url).status_code == 404
    assert as_admin.delete(url).status_code == 404
    assert as_admin.post(f"{url}/reindex").status_code == 404
    with inside(tenant_b):
        assert Chunk.objects.filter(document_id=other.pk).count() == 2


def test_delete_removes_the_document_and_its_chunks(tenant_a, as_admin):
    document = add_ready_document(tenant_a, FAQ, "FAQ")
    response = as_admin.delete(f"{base(tenant_a)}/documents/{document.pk}")
    assert response.status_code == 204
    with inside(tenant_a):
        assert not Document.objects.filter(pk=document.pk).exists()
        assert not Chunk.objects.filter(document_id=document.pk).exists()


def test_reindex_replaces_the_chunks(tenant_a, as_admin, ingest_on_commit):
    document = add_ready_document(tenant_a, FAQ, "FAQ")
    with inside(tenant_a):
        old_ids = set(Chunk.objects.values_list("pk", flat=True))

    url = f"{base(tenant_a)}/documents/{document.pk}/reindex"
    response = ingest_on_commit(lambda: as_admin.post(url))
    assert response.status_code == 202
    assert response.json()["status"] == "pending"

    with inside(tenant_a):
        document.refresh_from_db()
        new_ids = set(Chunk.objects.values_list("pk", flat=True))
    assert document.status == Document.Status.READY
    assert len(new_ids) == 2 and not new_ids & old_ids


# ---- search ----------------------------------------------------------------------------------


def test_search_returns_ranked_chunks_with_scores_and_document(tenant_a, as_agent):
    document = add_ready_document(tenant_a, FAQ, "FAQ")
    response = as_agent.get(f"{base(tenant_a)}/search", {"q": "wifi network", "k": 1})

    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "wifi network" and body["k"] == 1
    [hit] = body["results"]
    assert hit["rank"] == 1
    assert hit["document_id"] == str(document.pk)
    assert hit["document_title"] == "FAQ"
    assert "DemoCoffee" in hit["text"]
    assert hit["metadata"]["question"] == "Do you have wifi?"
    assert hit["score"] > 0
    assert hit["similarity"] is not None and hit["keyword_rank"] is not None


def test_search_with_a_blank_query_is_empty_and_a_bad_k_is_400(tenant_a, as_agent):
    add_ready_document(tenant_a, FAQ, "FAQ")
    response = as_agent.get(f"{base(tenant_a)}/search", {"q": "  "})
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert as_agent.get(f"{base(tenant_a)}/search", {"q": "wifi", "k": 0}).status_code == 400
    assert as_agent.get(f"{base(tenant_a)}/search", {"q": "wifi", "k": 500}).status_code == 400
    assert as_agent.get(f"{base(tenant_a)}/search").status_code == 400
