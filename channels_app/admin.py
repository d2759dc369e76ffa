"""Channel accounts in the admin: secrets are write-only (a blank field keeps the stored one)."""

from django import forms
from django.contrib import admin

from channels_app import services
from channels_app.models import ChannelAccount, InboxEvent
from wafaa.errors import ApplicationError


class ChannelAccountForm(forms.ModelForm):
    access_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the stored token.",
    )
    app_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the stored secret.",
    )

    class Meta:
        model = ChannelAccount
        fields = [
            "client",
            "kind",
            "name",
            "external_id",
            "business_account_id",
            "display_phone_number",
            "access_token",
            "app_secret",
            "verify_token",
            "graph_api_version",
            "status",
        ]

    def clean(self):
        cleaned = super().clean()
        for name in ("access_token", "app_secret"):
            if not cleaned.get(name):
                if self.instance.pk:
                    cleaned[name] = getattr(self.instance, name)
                else:
                    self.add_error(name, "Required for a new account.")
        self._verify_access(cleaned)
        return cleaned

    def _verify_access(self, cleaned) -> None:
        """A new account, another id or a new token: Meta must accept the token for the id
        (the same check as the API), so staff cannot connect a number by mistake either."""
        fields = ("kind", "external_id", "access_token")
        if self.errors or not all(cleaned.get(name) for name in fields):
            return
        if self.instance.pk and not (
            {"kind", "external_id"} & set(self.changed_data)
            or cleaned["access_token"] != self.instance.access_token
        ):
            return
        try:
            services.channel_account_verify_access(
                kind=cleaned["kind"],
                external_id=cleaned["external_id"],
                access_token=cleaned["access_token"],
                graph_api_version=cleaned.get("graph_api_version") or "",
            )
        except ApplicationError as exc:
            self.add_error("access_token", exc.message)


@admin.register(ChannelAccount)
class ChannelAccountAdmin(admin.ModelAdmin):
    form = ChannelAccountForm
    list_display = ["__str__", "client", "kind", "external_id", "status", "last_seen_at"]
    list_filter = ["kind", "status"]
    search_fields = ["external_id", "display_phone_number", "client__slug", "client__name"]
    readonly_fields = ["last_seen_at", "created_at", "updated_at"]
    autocomplete_fields = ["client"]


@admin.register(InboxEvent)
class InboxEventAdmin(admin.ModelAdmin):
    """The webhook inbox: parked events (failed every attempt) are found here, with their
    reason, and sent back to the drain with the retry action once the cause is fixed."""

    list_display = ["id", "client", "kind", "state", "attempts", "received_at", "error"]
    list_filter = ["state", "kind"]
    search_fields = ["client__slug", "trace_id"]
    ordering = ["-id"]
    actions = ["retry"]
    exclude = ["body"]  # customers' texts: the conversation pages show what was stored
    readonly_fields = [
        "client",
        "kind",
        "account_ids",
        "received_at",
        "trace_id",
        "body_size",
        "state",
        "attempts",
        "leased_until",
        "last_error",
        "processed_at",
    ]

    def has_add_permission(self, request):
        return False

    @admin.display(description="error")
    def error(self, event):
        return event.last_error[:120]

    @admin.display(description="body size (bytes)")
    def body_size(self, event):
        return len(event.body or b"")

    @admin.action(description="Retry: make the selected events pending again")
    def retry(self, request, queryset):
        count = queryset.exclude(state=InboxEvent.State.PENDING).update(
            state=InboxEvent.State.PENDING, attempts=0, leased_until=None
        )
        self.message_user(request, f"{count} event(s) will be drained again by the next sweep.")
