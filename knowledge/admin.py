"""Admin of a client's documents, for the per-client admin site (backoffice.client_admin).

Documents and chunks live in the client's schema, which the main admin (in `public`) cannot
read, so nothing here is registered on `admin.site`. The per-client site registers
`DocumentAdmin` (with `ChunkInline`) and runs every request inside the chosen client's schema.

Staff can upload a file (the add form goes through the same upload service as the API: size
limit, type by content, dedupe, plan limit), see status, progress and errors, read the chunks,
reindex, and delete (chunks go with the document).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import connection
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import reverse

from knowledge import services
from knowledge.models import Chunk, Document
from wafaa.admin_history import NoHistoryMixin
from wafaa.errors import ApplicationError

CHUNKS_SHOWN = 50


class ChunkInlineFormSet(BaseInlineFormSet):
    def get_queryset(self):
        # A large document has thousands of chunks: show the first ones, without vectors.
        return super().get_queryset().defer("embedding", "search_vector")[:CHUNKS_SHOWN]


class ChunkInline(admin.TabularInline):
    model = Chunk
    formset = ChunkInlineFormSet
    extra = 0
    can_delete = False
    fields = ["ordinal", "text", "token_count", "metadata", "embedder"]
    readonly_fields = fields
    ordering = ["ordinal"]
    verbose_name_plural = f"Chunks (the first {CHUNKS_SHOWN})"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DocumentUploadForm(forms.ModelForm):
    """The add form: a file and an optional title, stored by `services.document_upload`."""

    file = forms.FileField(help_text="TXT, Markdown, HTML, PDF, DOCX, or a CSV of questions.")
    title = forms.CharField(
        max_length=300, required=False, help_text="Optional: taken from the file if empty."
    )

    class Meta:
        model = Document
        fields = ["title"]

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.upload_result = None

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is None:
            return cleaned
        try:
            # The admin runs the add view in a transaction: if anything after this fails,
            # the document and its queued ingestion are rolled back together.
            self.upload_result = services.document_upload(
                client=connection.tenant,
                content=upload,
                filename=upload.name,
                content_type=upload.content_type or "",
                title=cleaned.get("title") or "",
                created_by_email=f"staff:{self.request.user.get_username()}",
            )
        except ApplicationError as exc:
            raise forms.ValidationError(f"{exc.message} ({exc.code})") from None
        return cleaned


class DocumentAdmin(NoHistoryMixin, admin.ModelAdmin):
    list_display = [
        "title",
        "kind",
        "status",
        "progress_percent",
        "chunks_total",
        "embedder",
        "size_bytes",
        "created_at",
    ]
    list_filter = ["status", "kind", "embedder"]
    search_fields = ["title", "original_filename", "checksum"]
    ordering = ["-created_at"]
    actions = ["reindex_documents"]
    inlines = [ChunkInline]
    readonly_fields = [
        "status",
        "progress_percent",
        "error",
        "error_code",
        "warnings",
        "source",
        "original_filename",
        "content_type",
        "kind",
        "size_bytes",
        "checksum",
        "language",
        "chunks_total",
        "chunks_done",
        "embedder",
        "dimensions",
        "ingest_version",
        "created_by_email",
        "created_at",
        "updated_at",
    ]
    fields = ["title", *readonly_fields]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")

    @admin.display(description="progress")
    def progress_percent(self, obj: Document) -> str:
        return f"{obj.progress * 100:.0f}%"

    # -- add: upload through the service ----------------------------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        form_class = super().get_form(request, obj, form=DocumentUploadForm, fields=["title"])

        class RequestForm(form_class):
            def __init__(self, *args, **kw):
                super().__init__(*args, request=request, **kw)

        return RequestForm

    def get_fields(self, request, obj=None):
        return ["file", "title"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        result = form.upload_result
        if not result.created:
            self.message_user(
                request,
                "This file was uploaded before: here is the existing document.",
                messages.WARNING,
            )
        return result.document

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["title", "updated_at"])
        # On add, the upload service has stored the document already.

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    # -- reindex and delete through the services ---------------------------------------------

    @admin.action(description="Reindex selected documents")
    def reindex_documents(self, request, queryset):
        count = 0
        for document in queryset:
            services.document_reindex(document=document)
            count += 1
        self.message_user(request, f"{count} document(s) queued for reindexing.")

    def delete_model(self, request, obj):
        services.document_delete(document=obj)

    def delete_queryset(self, request, queryset):
        for document in queryset:
            services.document_delete(document=document)

    def response_post_save_add(self, request, obj):
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:knowledge_document_change", args=[obj.pk])
        )
