"""The knowledge page (/inbox/<slug>/knowledge/): owners and admins upload through the API's own
service and checks, follow the ingestion live, try a question through the search endpoint's
retrieval (and the bot's draft), delete and reindex; agents are refused, another client's
people get 404 and never see or search this client's knowledge; CSRF on every change."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge import services
from knowledge.models import Chunk, Document
from tenants import selectors as tenant_selectors
from tenants.models import Membership
from tests.conftest import inside
from tests.desk.conftest import sign_in
from tests.security import crafted
from tests.tenants.factories import MembershipFactory, api_as_user

FAQ = (
    b"question,answer\n"
    b"Do you have wifi?,Yes: the network is DemoCoffee and the password is espresso42.\n"
    b"Do you deliver?,We deliver within 5 km every day from 9am to 9pm.\n"
    b"Can I bring my dog?,Dogs are welcome on the terrace.\n"
)
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def page_url(client, rest="") -> str:
    return f"/inbox/{client.slug}/knowledge/{rest}"


def upload(http, client, name="faq.csv", data=FAQ, content_type="text/csv", **fields):
    file = SimpleUploadedFile(name, data, content_type=content_type)
    return http.post(page_url(client, "upload/"), {"file": file, **fields})


def statuses(html: bytes) -> dict[str, str]:
    """{document id: status} of the documents listed on the page or in the fragment."""
    pattern = rb'data-document-id="([0-9a-f-]+)" data-status="(\w+)"'
    return {i.decode(): s.decode() for i, s in re.findall(pattern, html)}


def results(html: bytes) -> list[str]:
    return re.findall(r'<li class="search-result".*?</li>', html.decode(), flags=re.S)


def stored(client) -> int:
    with inside(client):
        return Document.objects.count()


@pytest.fixture
def owner(member):
    return member(Membership.Role.OWNER)


@pytest.fixture
def as_owner(owner):
    return sign_in(owner)


@pytest.fixture
def ingest_on_commit(eager_tasks, django_capture_on_commit_callbacks):
    """Run the ingestion task (in this process) when the upload's transaction commits, as the
    knowledge API tests do."""

    def run(send):
        with django_capture_on_commit_callbacks(execute=True):
            return send()

    return run


def add_ready_document(client, data: bytes = FAQ, title: str = "Coffee FAQ") -> Document:
    with inside(client):
        document = services.document_upload(
            client=client, content=data, filename="faq.csv", title=title, enqueue=False
        ).document
        assert services.document_ingest(document=document) == "ready"
        return document


# --- upload, ingestion, search ---------------------------------------------------------------


def test_owner_uploads_a_faq_csv_which_is_indexed_and_answers_a_question(
    tenant_a, owner, as_owner, ingest_on_commit
):
    response = ingest_on_commit(lambda: upload(as_owner, tenant_a, title="Coffee FAQ"))

    assert response.status_code == 302
    assert response["Location"] == page_url(tenant_a)
    with inside(tenant_a):
        document = Document.objects.get()
        assert document.title == "Coffee FAQ"
        assert document.created_by_email == owner.email
        assert document.status == "ready"
        assert bytes(document.content) == FAQ
        chunks = Chunk.objects.filter(document=document).count()
    assert chunks == 3

    page = as_owner.get(page_url(tenant_a))
    assert page.status_code == 200
    assert statuses(page.content) == {str(document.pk): "ready"}
    html = page.content.decode()
    assert "“Coffee FAQ” was uploaded; it is being indexed." in html
    assert "3 entries" in html
    assert 'id="upload-form"' in html and 'name="file"' in html
    # Nothing in progress: the list does not poll.
    assert 'data-busy="false"' in html and "every 2s" not in html

    found = results(as_owner.get(page_url(tenant_a), {"q": "wifi password"}).content)
    assert found, "the wifi entry answers"
    assert 'data-rank="1"' in found[0]
    assert "espresso42" in found[0]
    assert "Coffee FAQ" in found[0]
    assert re.search(r"score 0\.\d{4}", found[0])
    # The same entries, in the same order, as the REST search endpoint's retrieval.
    with inside(tenant_a):
        expected = [chunk.chunk_id for chunk in services.retrieve("wifi password", k=5)]
    ids = [int(re.search(r'data-chunk-id="(\d+)"', item)[1]) for item in found]
    assert ids == expected
    api = api_as_user(owner, tenant_a).get(
        f"/api/v1/clients/{tenant_a.pk}/knowledge/search", {"q": "wifi password"}
    )
    assert [row["chunk_id"] for row in api.json()["results"]] == ids


def test_the_bots_draft_is_shown_with_its_confidence(tenant_a, as_owner):
    add_ready_document(tenant_a)

    plain = as_owner.get(page_url(tenant_a), {"q": "Do you have wifi?"})
    assert b'id="draft"' not in plain.content  # only on request: with an LLM it costs a call

    response = as_owner.get(page_url(tenant_a), {"q": "Do you have wifi?", "answer": "1"})
    html = response.content.decode()
    draft = re.search(r'<div id="draft" class="draft" data-outcome="(\w+)">(.*?)</div>', html, re.S)
    assert draft, html
    assert draft[1] == "answered"
    assert "DemoCoffee" in draft[2]
    confidence = float(re.search(r'data-confidence="([0-9.]+)"', draft[2])[1])
    assert confidence >= tenant_a.confidence_threshold
    assert results(response.content)


def test_an_unknown_question_finds_nothing_and_the_bot_does_not_answer(tenant_a, as_owner):
    response = as_owner.get(page_url(tenant_a), {"q": "wifi", "answer": "1"})  # no documents
    assert response.status_code == 200
    assert results(response.content) == []
    assert b'id="search-empty"' in response.content
    assert b'data-outcome="answered"' not in response.content


def test_ingestion_progress_is_polled_until_no_document_is_in_progress(
    tenant_a, as_owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(as_owner, tenant_a)
    assert response.status_code == 302
    assert len(callbacks) == 1  # the ingestion, queued for after the commit

    page = as_owner.get(page_url(tenant_a)).content.decode()
    ((document_id, status),) = statuses(page.encode()).items()
    assert status == "pending"
    assert "Waiting to be indexed" in page
    poll = re.search(r'hx-get="([^"]+)" hx-trigger="every 2s" hx-swap="outerHTML"', page)
    assert poll, "a document in progress: the list polls"
    fragment = poll[1].replace("&amp;", "&")
    assert fragment.startswith(page_url(tenant_a, "documents/?since="))

    # Nothing changed: an empty answer (htmx swaps nothing), cheaply (the session, the user,
    # the membership, the schema, the stamp's one aggregate).
    with CaptureQueriesContext(connection) as queries:
        assert as_owner.get(fragment).status_code == 204
    assert len(queries) <= 6, [q["sql"] for q in queries]

    with inside(tenant_a):
        assert services.document_ingest_by_id(document_id=document_id) == "ready"

    changed = as_owner.get(fragment)
    assert changed.status_code == 200
    assert statuses(changed.content) == {document_id: "ready"}
    assert b"every 2s" not in changed.content  # none in progress: the poll stops
    assert b'data-busy="false"' in changed.content


def test_a_failed_document_shows_its_reason(tenant_a, as_owner):
    with inside(tenant_a):
        document = services.document_upload(
            client=tenant_a, content=b"question,answer\n", filename="empty.csv", enqueue=False
        ).document
        assert services.document_ingest(document=document) == "failed"
        document.refresh_from_db()
    page = as_owner.get(page_url(tenant_a)).content.decode()
    assert statuses(page.encode()) == {str(document.pk): "failed"}
    note = re.search(
        r'class="alert alert-error document-error" data-code="(\w+)" dir="auto">(.*?)</p>', page
    )
    assert note and note[1] == document.error_code
    assert document.error and note[2] == document.error.replace("'", "&#x27;")


# --- refused uploads -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "content_type", "status", "code", "says"),
    [
        # 1 GiB of XML in ~1 MB, refused by its zip directory (the web side never inflates it).
        ("handbook.docx", None, DOCX_TYPE, 422, "suspicious_compression", "word/document.xml"),
        # The name says PDF; the magic bytes say PNG.
        (
            "policy.pdf",
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
            "application/pdf",
            400,
            "invalid_pdf",
            "%PDF",
        ),
        ("faq.csv", crafted.csv_rows(1_000_000), "text/csv", 422, "too_many_rows", "rows"),
    ],
)
def test_a_crafted_file_is_refused_with_the_apis_message_and_nothing_stored(
    tenant_a,
    as_owner,
    django_capture_on_commit_callbacks,
    name,
    data,
    content_type,
    status,
    code,
    says,
):
    data = crafted.docx_bomb() if data is None else data
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(as_owner, tenant_a, name, data, content_type, title="Kept title")

    assert response.status_code == status
    html = response.content.decode()
    error = re.search(r'id="upload-error" role="alert" data-code="(\w+)">(.*?)</p>', html, re.S)
    assert error, html
    assert error[2].startswith("The file was not accepted: ")
    # The API's own refusal, code and message alike.
    api_error = _api_refusal(tenant_a, name, data, content_type)
    assert error[1] == api_error["code"]
    assert api_error["message"].replace("'", "&#x27;") in error[2]
    assert error[1] == code
    assert says in error[2]
    assert 'value="Kept title"' in html  # the form keeps what was typed
    assert callbacks == []  # no ingestion queued
    assert stored(tenant_a) == 0


def _api_refusal(client, name, data, content_type) -> dict:
    api = api_as_user(MembershipFactory(client=client, role=Membership.Role.ADMIN).user, client)
    file = SimpleUploadedFile(name, data, content_type=content_type)
    response = api.post(
        f"/api/v1/clients/{client.pk}/knowledge/upload", {"file": file}, format="multipart"
    )
    assert response.status_code >= 400
    return response.json()["error"]


def test_a_body_larger_than_the_plan_is_refused_by_its_declared_size(tenant_a, as_owner):
    tenant_a.max_upload_bytes = 1024
    tenant_a.save(update_fields=["max_upload_bytes"])
    tenant_selectors.client_cache_clear()

    response = upload(as_owner, tenant_a, "big.txt", b"x" * 200_000, "text/plain")

    assert response.status_code == 413
    html = response.content.decode()
    assert 'data-code="payload_too_large"' in html
    assert "this plan accepts files up to 0.0 MB" in html
    assert stored(tenant_a) == 0
    # A smaller file still over the plan passes the declared size and is refused by its own.
    response = upload(as_owner, tenant_a, "small.txt", b"y" * 2048, "text/plain")
    assert response.status_code == 413
    assert stored(tenant_a) == 0


def test_an_upload_without_a_file_or_with_a_long_title_is_refused(tenant_a, as_owner):
    response = as_owner.post(page_url(tenant_a, "upload/"), {"title": "No file"})
    assert response.status_code == 400
    assert b"Choose a file to upload." in response.content
    response = upload(as_owner, tenant_a, title="t" * 301)
    assert response.status_code == 400
    assert b"A title can be at most 300 characters long." in response.content
    assert stored(tenant_a) == 0


def test_the_same_file_twice_gives_back_the_first_document(tenant_a, as_owner):
    assert upload(as_owner, tenant_a, title="First").status_code == 302
    response = upload(as_owner, tenant_a, "copy.csv", title="Second")
    assert response.status_code == 302
    assert (
        "This file was uploaded before, as “First”."
        in as_owner.get(response["Location"]).content.decode()
    )
    assert stored(tenant_a) == 1


# --- delete and reindex ----------------------------------------------------------------------


def test_admin_deletes_and_reindexes_a_document(
    tenant_a, member, django_capture_on_commit_callbacks
):
    http = sign_in(member(Membership.Role.ADMIN))
    document = add_ready_document(tenant_a)

    with django_capture_on_commit_callbacks() as callbacks:
        response = http.post(page_url(tenant_a, f"{document.pk}/reindex/"))
    assert response.status_code == 302
    assert len(callbacks) == 1  # queued to the ingest worker
    with inside(tenant_a):
        document.refresh_from_db()
        assert document.status == "pending"
        # The previous index keeps answering until the new one replaces it.
        assert services.retrieve("wifi")
    assert "is being indexed again" in http.get(page_url(tenant_a)).content.decode()

    response = http.post(page_url(tenant_a, f"{document.pk}/delete/"))
    assert response.status_code == 302
    with inside(tenant_a):
        assert not Document.objects.exists()
        assert not Chunk.objects.exists()
    page = http.get(page_url(tenant_a)).content
    assert "“Coffee FAQ” was deleted".encode() in page
    assert statuses(page) == {}
    # Gone: a second delete is 404.
    assert http.post(page_url(tenant_a, f"{document.pk}/delete/")).status_code == 404


def test_changes_need_post(tenant_a, as_owner):
    document = add_ready_document(tenant_a)
    for rest in ("upload/", f"{document.pk}/delete/", f"{document.pk}/reindex/"):
        assert as_owner.get(page_url(tenant_a, rest)).status_code == 405, rest
    assert stored(tenant_a) == 1


def test_every_change_needs_the_csrf_token(tenant_a, owner):
    http = sign_in(owner, enforce_csrf=True)
    document = add_ready_document(tenant_a)

    assert upload(http, tenant_a, "other.csv", FAQ + b"Open on Sunday?,Yes.\n").status_code == 403
    for rest in (f"{document.pk}/delete/", f"{document.pk}/reindex/"):
        assert http.post(page_url(tenant_a, rest)).status_code == 403, rest
    with inside(tenant_a):
        assert list(Document.objects.values_list("pk", "status")) == [(document.pk, "ready")]

    page = http.get(page_url(tenant_a))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)[1].decode()
    response = upload(
        http, tenant_a, "other.csv", FAQ + b"Open on Sunday?,Yes.\n", csrfmiddlewaretoken=token
    )
    assert response.status_code == 302
    assert stored(tenant_a) == 2


# --- who may --------------------------------------------------------------------------------


def test_the_top_bar_links_the_page_for_owners_and_admins_only(tenant_a, member):
    for role, shown in (("owner", True), ("admin", True), ("agent", False)):
        page = sign_in(member(role)).get(f"/inbox/{tenant_a.slug}/")
        assert page.status_code == 200
        link = f'id="knowledge-link" class="topbar-link" href="{page_url(tenant_a)}"'
        assert (link in page.content.decode()) is shown, role


def test_an_agent_cannot_open_the_page_search_or_upload(tenant_a, as_agent):
    document = add_ready_document(tenant_a)
    for path in (page_url(tenant_a), page_url(tenant_a, "documents/")):
        response = as_agent.get(path, {"q": "wifi"})
        assert response.status_code == 403, path
        assert b"espresso42" not in response.content
        assert b"Coffee FAQ" not in response.content
    response = upload(as_agent, tenant_a, "other.csv", FAQ + b"Open on Sunday?,Yes.\n")
    assert response.status_code == 403
    for rest in (f"{document.pk}/delete/", f"{document.pk}/reindex/"):
        assert as_agent.post(page_url(tenant_a, rest)).status_code == 403, rest
    with inside(tenant_a):
        assert list(Document.objects.values_list("pk", "status")) == [(document.pk, "ready")]


def test_a_stranger_is_sent_to_the_login_page(tenant_a):
    from django.test import Client as HttpClient

    http = HttpClient()
    for path in (page_url(tenant_a), page_url(tenant_a, "documents/")):
        response = http.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/inbox/login/?next=")
    assert upload(http, tenant_a).status_code == 302
    assert stored(tenant_a) == 0


def test_a_member_of_another_client_cannot_reach_or_search_a_knowledge(tenant_a, tenant_b, member):
    document = add_ready_document(tenant_a)
    http = sign_in(member(Membership.Role.OWNER, client=tenant_b))

    for path in (page_url(tenant_a), page_url(tenant_a, "documents/")):
        response = http.get(path, {"q": "wifi", "answer": "1"})
        assert response.status_code == 404, path
        assert b"espresso42" not in response.content and b"Coffee FAQ" not in response.content
    assert upload(http, tenant_a, "other.csv", FAQ + b"Open?,Yes.\n").status_code == 404
    for rest in (f"{document.pk}/delete/", f"{document.pk}/reindex/"):
        assert http.post(page_url(tenant_a, rest)).status_code == 404, rest
        # A's document id inside B's own page is 404 too.
        assert http.post(page_url(tenant_b, rest)).status_code == 404, rest

    # B's own page lists none of A's documents, and B's search finds none of A's entries.
    own = http.get(page_url(tenant_b), {"q": "wifi password", "answer": "1"})
    assert own.status_code == 200
    assert statuses(own.content) == {}
    assert results(own.content) == []
    assert b"espresso42" not in own.content and b"DemoCoffee" not in own.content
    with inside(tenant_a):
        assert list(Document.objects.values_list("pk", "status")) == [(document.pk, "ready")]


# --- language ---------------------------------------------------------------------------------


def test_the_page_is_translated_into_arabic(tenant_a, as_owner):
    add_ready_document(tenant_a)
    as_owner.post("/inbox/i18n/setlang/", {"language": "ar", "next": page_url(tenant_a)})
    html = as_owner.get(page_url(tenant_a), {"q": "wifi"}).content.decode()
    assert '<html lang="ar" dir="rtl">' in html
    for english in ("Upload a document", "Try a question", "Ready", "Documents"):
        assert f">{english}<" not in html, english
    assert "المعرفة" in html  # "Knowledge"
