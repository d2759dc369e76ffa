"""Knowledge endpoints (client-scoped): upload, list, detail, delete, reindex, search. Thin.

Agents may read and search; changing the knowledge (upload, delete, reindex) needs admin.
"""

from __future__ import annotations

from dataclasses import asdict

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from knowledge import selectors, services
from knowledge.api import serializers as s
from knowledge.models import Document
from tenants.api.base import ClientScopedAPIView
from tenants.models import Membership
from wafaa.api.parsers import SafeJSONParser


def _actor(request) -> str:
    api_key = getattr(request.user, "api_key", None)
    return f"api-key:{api_key.prefix}" if api_key else (request.user.email or "")


def _document_or_404(doc_id) -> Document:
    document = selectors.document_get(document_id=doc_id)
    if document is None:
        raise NotFound("No such document in this client.")
    return document


def _status_url(request, document: Document) -> str:
    path = reverse(
        "knowledge-document-detail",
        kwargs={"client_id": request.client.pk, "doc_id": document.pk},
    )
    return request.build_absolute_uri(path)


def _content_length(request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class DocumentUploadApi(ClientScopedAPIView):
    """Upload a file (multipart `file`, optional `title`) or a text (JSON `{title, text}`).

    202 with the new document (status `pending`) and its status URL; 200 with the existing
    document when the same content was uploaded before.
    """

    required_role = Membership.Role.ADMIN
    parser_classes = [MultiPartParser, FormParser, SafeJSONParser]

    @extend_schema(
        request={
            "multipart/form-data": s.DocumentUploadInputSerializer,
            "application/json": s.DocumentUploadInputSerializer,
        },
        responses={202: s.DocumentUploadOutputSerializer, 200: s.DocumentUploadOutputSerializer},
    )
    def post(self, request, client_id):
        services.document_upload_precheck(
            client=request.client, content_length=_content_length(request)
        )
        data = s.DocumentUploadInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload, values = data.validated_data.get("file"), data.validated_data
        result = services.document_upload(
            client=request.client,
            content=upload if upload is not None else values["text"].encode("utf-8"),
            filename=upload.name if upload is not None else f"text.{values['format']}",
            content_type=(upload.content_type or "") if upload is not None else "",
            title=values["title"],
            source=Document.Source.UPLOAD if upload is not None else Document.Source.TEXT,
            created_by_email=_actor(request),
        )
        url = _status_url(request, result.document)
        context = {"status_url": url, "duplicate": not result.created}
        body = s.DocumentUploadOutputSerializer(result.document, context=context).data
        code = status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK
        return Response(body, status=code, headers={"Location": url})


class DocumentListApi(ClientScopedAPIView):
    @extend_schema(
        parameters=[s.DocumentFilterSerializer],
        responses={200: s.DocumentOutputSerializer(many=True)},
    )
    def get(self, request, client_id):
        filters = s.DocumentFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = selectors.document_list(status=filters.validated_data.get("status"))
        return self.paginate(request, queryset, s.DocumentOutputSerializer)


class DocumentDetailApi(ClientScopedAPIView):
    required_roles = {"DELETE": Membership.Role.ADMIN}

    @extend_schema(responses={200: s.DocumentOutputSerializer})
    def get(self, request, client_id, doc_id):
        return Response(s.DocumentOutputSerializer(_document_or_404(doc_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, client_id, doc_id):
        services.document_delete(document=_document_or_404(doc_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentReindexApi(ClientScopedAPIView):
    """Index the document again from its stored file (e.g. after an embedder change)."""

    required_role = Membership.Role.ADMIN

    @extend_schema(request=None, responses={202: s.DocumentOutputSerializer})
    def post(self, request, client_id, doc_id):
        document = services.document_reindex(document=_document_or_404(doc_id))
        return Response(s.DocumentOutputSerializer(document).data, status=status.HTTP_202_ACCEPTED)


class KnowledgeSearchApi(ClientScopedAPIView):
    """Test retrieval: the chunks the bot would use to answer `q`, best first."""

    @extend_schema(parameters=[s.SearchInputSerializer], responses={200: s.SearchOutputSerializer})
    def get(self, request, client_id):
        params = s.SearchInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        query, k = params.validated_data["q"], params.validated_data["k"]
        results = services.retrieve(query, k=k)
        rows = [{"rank": i, **asdict(chunk)} for i, chunk in enumerate(results, start=1)]
        return Response(s.SearchOutputSerializer({"query": query, "k": k, "results": rows}).data)
