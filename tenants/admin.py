"""Django admin for platform staff: clients, memberships, API keys (all in `public`)."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from tenants import accounts, services
from tenants.models import APIKey, Client, DailyUsage, Domain, Invitation, Membership, SignUp


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class UsageInline(admin.TabularInline):
    model = DailyUsage
    extra = 0
    can_delete = False
    max_num = 0
    fields = [
        "day",
        "messages_in",
        "messages_out",
        "bot_answers",
        "handoffs",
        "prompt_tokens",
        "completion_tokens",
    ]
    readonly_fields = fields
    ordering = ["-day"]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-day")


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "status",
        "schema_name",
        "messages_per_day",
        "created_at",
        "data_link",
    ]
    list_filter = ["status"]
    search_fields = ["name", "slug", "schema_name"]
    readonly_fields = ["schema_name", "created_at", "updated_at"]
    inlines = [DomainInline, MembershipInline, UsageInline]
    actions = ["suspend", "activate"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "status", "schema_name", "created_at", "updated_at"]}),
        (
            "Plan limits",
            {
                "fields": [
                    "api_requests_per_minute",
                    "messages_per_day",
                    "max_documents",
                    "max_upload_bytes",
                    "max_chunks_per_document",
                    "max_chunks",
                ]
            },
        ),
        (
            "Bot",
            {
                "fields": [
                    "bot_name",
                    "persona",
                    "languages",
                    "llm_model",
                    "handoff_keywords",
                    "confidence_threshold",
                    "fallback_message",
                    "unsupported_media",
                ]
            },
        ),
        ("Notifications", {"fields": ["callback_url"]}),
    ]

    @admin.display(description="Data")
    def data_link(self, obj):
        url = reverse("client_admin:open_client", args=[obj.pk])
        return format_html('<a href="{}">Open this client\'s data</a>', url)

    def get_readonly_fields(self, request, obj=None):
        # The slug names the schema and webhook URLs: fixed once the client exists.
        return [*self.readonly_fields, "slug"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            services.selectors.client_cache_forget(client_id=obj.pk)
            return
        settable = services.CLIENT_UPDATABLE_FIELDS | services.STAFF_ONLY_FIELDS
        fields = {k: v for k, v in form.cleaned_data.items() if k in settable and k != "name"}
        created = services.client_create(name=obj.name, slug=obj.slug, **fields)
        obj.pk = created.pk
        obj.schema_name = created.schema_name

    @admin.action(description="Suspend selected clients")
    def suspend(self, request, queryset):
        for client in queryset:
            services.client_set_status(client=client, status=Client.Status.SUSPENDED)
        messages.success(request, f"{queryset.count()} client(s) suspended.")

    @admin.action(description="Activate selected clients")
    def activate(self, request, queryset):
        for client in queryset:
            services.client_set_status(client=client, status=Client.Status.ACTIVE)
        messages.success(request, f"{queryset.count()} client(s) activated.")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "client", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "client__slug", "client__name"]
    autocomplete_fields = ["user", "client"]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "client", "role", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["prefix", "name", "client__slug"]
    # The secret is shown once at creation (API); here only its metadata is visible.
    readonly_fields = [
        "prefix",
        "hashed_key",
        "client",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        for key in queryset:
            services.api_key_revoke(client=key.client, key_id=key.pk)
        messages.success(request, f"{queryset.count()} key(s) revoked.")


@admin.register(SignUp)
class SignUpAdmin(admin.ModelAdmin):
    """Sign-ups whose email was never verified: no user, client or schema exists for them."""

    list_display = ["email", "client_slug", "client_name", "ip_address", "created_at", "expires_at"]
    search_fields = ["email", "client_slug", "ip_address"]
    list_filter = ["created_at"]
    readonly_fields = [
        "email",
        "name",
        "client_name",
        "client_slug",
        "ip_address",
        "created_at",
        "expires_at",
    ]
    exclude = ["password", "token_hash"]
    actions = ["purge_selected", "purge_expired"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Purge selected unverified sign-ups")
    def purge_selected(self, request, queryset):
        count = accounts.signups_purge(
            expired_only=False, ids=queryset.values_list("pk", flat=True)
        )
        messages.success(request, f"{count} unverified sign-up(s) purged.")

    @admin.action(description="Purge every expired sign-up")
    def purge_expired(self, request, queryset):
        count = accounts.signups_purge(expired_only=True)
        messages.success(request, f"{count} expired sign-up(s) purged.")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "client", "role", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role"]
    search_fields = ["email", "client__slug"]
    readonly_fields = [
        "client",
        "email",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
    ]
    exclude = ["token_hash"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
