"""The knowledge page (`/inbox/<slug>/knowledge/`): a client's documents with their ingestion
progress, an upload form, delete and reindex, and "try a question" (docs/inbox.md, "Knowledge
page").

For owners and admins (`client_view(ADMIN)`: an agent gets 403, a member of another client
404). Everything goes through the REST API's own code, so the page can neither accept a file
the API refuses nor answer a question differently:
- upload: `knowledge.services.document_upload_precheck` on the declared Content-Length before
  the body is read, then `document_upload` (plan size, type by magic bytes, a zip's directory,
  a CSV's rows; ingestion enqueued on the `ingest` queue after commit); a refusal is shown with
  the API's own message and status code;
- delete and reindex: `document_delete`, `document_reindex`;
- search: `knowledge.services.retrieve` (the search endpoint's hybrid retrieval), and on
  request the bot's draft from `conversations.pipeline.draft_answer` (what the evaluation
  uses; nothing is written, but with an LLM configured it is one LLM call).

While a document is pending or processing, the documents list polls its fragment every 2 s
with the stamp it was drawn from (204 when nothing changed); a list with none in progress is
drawn without the poll, so polling stops by itself.
"""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count, Max
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import pgettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from conversations import pipeline
from desk import selectors as desk_selectors
from desk.access import client_view, clients_of, not_found
from knowledge import selectors, services
from knowledge.models import Document
from tenants.models import Membership
from wafaa.errors import ApplicationError

ADMIN = Membership.Role.ADMIN
# The search endpoint's default and its bounds (knowledge.api.serializers.SearchInputSerializer).
SEARCH_K = 5
MAX_K = 50
MAX_QUESTION_CHARS = 10_000
MAX_TITLE_CHARS = 300
# The plan caps a client's documents (200 by default); the page lists this many at most.
MAX_LISTED = 500
IN_PROGRESS = (Document.Status.PENDING, Document.Status.PROCESSING)


def _status_label(status: str) -> str:
    return {
        Document.Status.PENDING: pgettext("knowledge", "Waiting to be indexed"),
        Document.Status.PROCESSING: pgettext("knowledge", "Indexing"),
        Document.Status.READY: pgettext("knowledge", "Ready"),
        Document.Status.FAILED: pgettext("knowledge", "Failed"),
    }.get(status, status)


def _outcome_label(outcome: str) -> str:
    return {
        "answered": pgettext("knowledge", "The bot would answer"),
        "fallback": pgettext("knowledge", "The bot would say it does not know"),
        "handoff": pgettext("knowledge", "The bot would hand the conversation to a person"),
        "unsupported": pgettext("knowledge", "The bot cannot read this message"),
    }.get(outcome, outcome)


def documents_stamp() -> str:
    """What the documents list was drawn from: it changes with every upload, delete and
    progress write (each writes `updated_at`). One statement."""
    facts = Document.objects.aggregate(count=Count("pk"), latest=Max("updated_at"))
    latest = facts["latest"].timestamp() if facts["latest"] else 0
    return f"{facts['count']}-{latest:.6f}"


def _documents_context() -> dict:
    documents = list(selectors.document_list()[:MAX_LISTED])
    for document in documents:
        document.status_label = _status_label(document.status)
        document.in_progress = document.status in IN_PROGRESS
    return {
        "documents": documents,
        "busy": any(document.in_progress for document in documents),
        "poll_query": urlencode({"since": documents_stamp()}),
    }


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value or default)))
    except ValueError:
        return default


def _search_context(request, client) -> dict:
    query = request.GET.get("q", "").strip()
    k = _int(request.GET.get("k"), SEARCH_K, 1, MAX_K)
    context = {"q": query, "k": k, "searched": bool(query)}
    if not query:
        return context
    if len(query) > MAX_QUESTION_CHARS:
        context["search_error"] = pgettext(
            "knowledge", "A question can be at most %(count)s characters long."
        ) % {"count": f"{MAX_QUESTION_CHARS:,}"}
        return context
    chunks = services.retrieve(query, k=k)
    context["results"] = [
        {"rank": rank, **asdict(chunk)} for rank, chunk in enumerate(chunks, start=1)
    ]
    if request.GET.get("answer"):
        draft = pipeline.draft_answer(
            client=client,
            question=query,
            language=pipeline.question_language(client, query),
        )
        context["draft"] = draft
        context["draft_label"] = _outcome_label(draft.outcome)
        context["threshold"] = client.confidence_threshold
    return context


def _page(
    request,
    client,
    *,
    upload_error: ApplicationError | None = None,
    title: str = "",
    status: int = 200,
):
    context = {
        "client": client,
        "clients": clients_of(request.user),
        "handoff_count": desk_selectors.handoff_count(),
        "max_upload_mb": f"{client.max_upload_bytes / (1024 * 1024):.1f}",
        "upload_error": upload_error,
        "title": title,
        **_documents_context(),
        **(_search_context(request, client) if request.method == "GET" else {}),
    }
    return render(request, "desk/knowledge.html", context, status=status)


@never_cache
@require_GET
@client_view(ADMIN)
def knowledge_view(request, client):
    return _page(request, client)


@never_cache
@require_GET
@client_view(ADMIN)
def knowledge_documents_fragment(request, client):
    """The documents list's poll: 204 when nothing changed since the stamp it was drawn from."""
    if request.GET.get("since") == documents_stamp():
        return HttpResponse(status=204)
    return render(
        request, "desk/_knowledge_documents.html", {"client": client, **_documents_context()}
    )


# --- changes ---------------------------------------------------------------------------------


def _content_length(request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class _FormError(ApplicationError):
    code = "invalid_input"


@csrf_exempt  # checked by `_upload` below, once the declared size has passed
@require_POST
@client_view(ADMIN)
def knowledge_upload_view(request, client):
    """The API's upload: a body declared larger than the plan allows is refused before it is
    read (as `DocumentUploadApi` does); the CSRF check, which reads the body for its token,
    comes after that and before anything is stored."""
    try:
        services.document_upload_precheck(client=client, content_length=_content_length(request))
    except ApplicationError as error:
        return _page(request, client, upload_error=error, status=error.status_code)
    return _upload(request, client)


@csrf_protect
def _upload(request, client):
    upload = request.FILES.get("file")
    title = request.POST.get("title", "")
    try:
        if upload is None:
            raise _FormError(pgettext("knowledge", "Choose a file to upload."))
        if len(title) > MAX_TITLE_CHARS:
            raise _FormError(
                pgettext("knowledge", "A title can be at most %(count)s characters long.")
                % {"count": MAX_TITLE_CHARS}
            )
        result = services.document_upload(
            client=client,
            content=upload,
            filename=upload.name or "",
            content_type=upload.content_type or "",
            title=title,
            source=Document.Source.UPLOAD,
            created_by_email=request.user.email or "",
        )
    except ApplicationError as error:
        return _page(request, client, upload_error=error, title=title, status=error.status_code)
    if result.created:
        messages.success(
            request,
            pgettext("knowledge", "“%(title)s” was uploaded; it is being indexed.")
            % {"title": result.document.title},
        )
    else:
        messages.info(
            request,
            pgettext("knowledge", "This file was uploaded before, as “%(title)s”.")
            % {"title": result.document.title},
        )
    return redirect("desk:knowledge", slug=client.slug)


def _on_document(request, client, document_id, action):
    document = selectors.document_get(document_id=document_id)
    if document is None:
        return not_found(request)
    messages.success(request, action(document))
    return redirect("desk:knowledge", slug=client.slug)


@require_POST
@client_view(ADMIN)
def knowledge_delete_view(request, client, document_id):
    def action(document):
        services.document_delete(document=document)
        return pgettext("knowledge", "“%(title)s” was deleted; the bot no longer uses it.") % {
            "title": document.title
        }

    return _on_document(request, client, document_id, action)


@require_POST
@client_view(ADMIN)
def knowledge_reindex_view(request, client, document_id):
    def action(document):
        services.document_reindex(document=document)
        return pgettext(
            "knowledge", "“%(title)s” is being indexed again; its current entries answer meanwhile."
        ) % {"title": document.title}

    return _on_document(request, client, document_id, action)
