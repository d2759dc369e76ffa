"""Channel accounts in the admin: secrets are write-only (a blank field keeps the stored one)."""

from django import forms
from django.contrib import admin

from channels_app.models import ChannelAccount


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
        return cleaned


@admin.register(ChannelAccount)
class ChannelAccountAdmin(admin.ModelAdmin):
    form = ChannelAccountForm
    list_display = ["__str__", "client", "kind", "external_id", "status", "last_seen_at"]
    list_filter = ["kind", "status"]
    search_fields = ["external_id", "display_phone_number", "client__slug", "client__name"]
    readonly_fields = ["last_seen_at", "created_at", "updated_at"]
    autocomplete_fields = ["client"]
