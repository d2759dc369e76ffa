"""A per-client admin for platform staff: one client's documents and conversations.

Client data lives in the client's own schema, which the main admin (in `public`) cannot see.
Staff open it from the client's page in the main admin ("Open this client's data"): the
chosen client is kept in the session, and every request to this site runs inside that
client's schema and returns to `public` afterwards. Only one client is open at a time, and
only staff can use it.
"""

from __future__ import annotations

from functools import update_wrapper

from django.contrib import admin
from django.db import connection
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from conversations.models import Contact, Conversation, ConversationEvent, Message
from knowledge.admin import DocumentAdmin
from knowledge.models import Document
from tenants.models import Client
from wafaa.admin_history import NoHistoryMixin

SESSION_KEY = "wafaa_admin_client_id"


class ClientDataAdminSite(admin.AdminSite):
    site_header = "Wafaa — client data"
    index_title = "Client data"

    def has_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def _client(self, request) -> Client | None:
        client_id = request.session.get(SESSION_KEY)
        return Client.objects.filter(pk=client_id).first() if client_id else None

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def wrapper(request, *args, **kwargs):
            client = self._client(request) if request.user.is_authenticated else None
            if client is None and request.user.is_authenticated and request.user.is_staff:
                return HttpResponseRedirect(reverse("admin:tenants_client_changelist"))
            if client is not None:
                connection.set_tenant(client)
                request.admin_client = client
            try:
                response = inner(request, *args, **kwargs)
                # Admin pages are TemplateResponses that query while rendering: render them
                # here, while the connection is still in the client's schema.
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
                return response
            finally:
                connection.set_schema_to_public()

        return update_wrapper(wrapper, view)

    def each_context(self, request):
        context = super().each_context(request)
        client = getattr(request, "admin_client", None)
        if client is not None:
            context["site_header"] = f"Wafaa — data of {client.name} ({client.slug})"
            context["site_title"] = f"{client.slug} data"
        return context

    def get_urls(self):
        return [
            path("open/<int:client_id>/", self.admin_view_open, name="open_client"),
            *super().get_urls(),
        ]

    def admin_view_open(self, request, client_id):
        if not (request.user.is_authenticated and request.user.is_staff):
            return HttpResponseRedirect(reverse("admin:login"))
        client = get_object_or_404(Client, pk=client_id)
        request.session[SESSION_KEY] = client.pk
        return HttpResponseRedirect(reverse("client_admin:index"))


site = ClientDataAdminSite(name="client_admin")


class MessageInline(admin.TabularInline):
    model = Message
    fk_name = "conversation"
    extra = 0
    can_delete = False
    fields = [
        "created_at",
        "direction",
        "author",
        "type",
        "text",
        "transcript",
        "status",
        "edited_at",
        "deleted_at",
        "errors",
        "failure_reason",
        "citations",
        "model",
        "trace_id",
    ]
    readonly_fields = fields
    ordering = ["created_at"]
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class EventInline(admin.TabularInline):
    model = ConversationEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "actor", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation, site=site)
class ConversationAdmin(NoHistoryMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "contact",
        "channel",
        "mode",
        "assigned_agent_email",
        "last_inbound_at",
        "unread_count",
        "ad_headline",
        "updated_at",
    ]
    list_filter = ["mode", "channel", "ad_source_type"]
    search_fields = ["contact__name", "contact__external_id", "messages__text", "ad_source_id"]
    readonly_fields = [
        "contact",
        "channel",
        "channel_account_id",
        "handoff_reason",
        "handoff_at",
        "last_inbound_at",
        "last_outbound_at",
        "ad_source_type",
        "ad_source_id",
        "ad_source_url",
        "ad_headline",
        "ad_ctwa_clid",
        "ad_referred_at",
        "created_at",
        "updated_at",
    ]
    inlines = [MessageInline, EventInline]
    list_select_related = ["contact"]


@admin.register(Contact, site=site)
class ContactAdmin(NoHistoryMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "channel",
        "external_id",
        "wa_id",
        "previous_wa_ids",
        "identity_changed_at",
        "first_seen_at",
        "last_seen_at",
    ]
    list_filter = ["channel"]
    search_fields = ["name", "external_id", "wa_id", "user_id"]


@admin.register(Message, site=site)
class MessageAdmin(NoHistoryMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "conversation",
        "direction",
        "author",
        "type",
        "status",
        "trace_id",
    ]
    list_filter = ["direction", "status", "author", "type"]
    search_fields = ["text", "external_id", "trace_id"]
    readonly_fields = [f.name for f in Message._meta.fields]
    actions = ["retry_parked"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Answer the selected parked messages again")
    def retry_parked(self, request, queryset):
        # Parked: their reply failed REPLY_MAX_ATTEMPTS times (filter by status "parked").
        from conversations.pipeline import inbound_retry_parked

        count = inbound_retry_parked(message_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} parked message(s) queued for a reply again.")


site.register(Document, DocumentAdmin)
