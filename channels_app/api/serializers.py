from rest_framework import serializers

from channels_app.models import ChannelAccount
from wafaa.api.serializers import StrictInputSerializer


class ChannelAccountOutputSerializer(serializers.ModelSerializer):
    """Secrets (access token, app secret) are never returned once stored."""

    webhook_path = serializers.SerializerMethodField()

    class Meta:
        model = ChannelAccount
        fields = [
            "id",
            "kind",
            "name",
            "external_id",
            "business_account_id",
            "display_phone_number",
            "verify_token",
            "graph_api_version",
            "status",
            "last_seen_at",
            "webhook_path",
            "created_at",
            "updated_at",
        ]

    def get_webhook_path(self, account) -> str:
        return f"/webhook/{account.kind}/{account.client.slug}/"


class ChannelAccountCreateInputSerializer(StrictInputSerializer):
    kind = serializers.ChoiceField(choices=ChannelAccount.Kind.choices)
    name = serializers.CharField(max_length=100, required=False, default="")
    external_id = serializers.RegexField(
        r"^\d{3,64}$", help_text="WhatsApp phone number id, or the Instagram account id"
    )
    business_account_id = serializers.CharField(max_length=64, required=False, default="")
    display_phone_number = serializers.CharField(max_length=32, required=False, default="")
    access_token = serializers.CharField(write_only=True, min_length=10)
    app_secret = serializers.CharField(write_only=True, min_length=8)
    verify_token = serializers.CharField(max_length=128, required=False)
    graph_api_version = serializers.RegexField(r"^v\d+\.\d+$", required=False)


class ChannelAccountUpdateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    display_phone_number = serializers.CharField(max_length=32, required=False)
    access_token = serializers.CharField(write_only=True, min_length=10, required=False)
    app_secret = serializers.CharField(write_only=True, min_length=8, required=False)
    verify_token = serializers.CharField(max_length=128, required=False)
    graph_api_version = serializers.RegexField(r"^v\d+\.\d+$", required=False)
    status = serializers.ChoiceField(
        choices=[ChannelAccount.Status.ACTIVE, ChannelAccount.Status.INACTIVE], required=False
    )


class TemplateOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    language = serializers.CharField()
    category = serializers.CharField()
    body = serializers.CharField()
    parameters = serializers.IntegerField(help_text="How many {{n}} the body takes.")


class ChannelCheckOutputSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    kind = serializers.CharField()
    external_id = serializers.CharField()
    ok = serializers.BooleanField()
    access = serializers.CharField(help_text="ok, denied (Meta refuses the token) or unavailable")
    permissions_missing = serializers.ListField(child=serializers.CharField())
    permissions_unknown = serializers.BooleanField()
    detail = serializers.CharField()
    checked_at = serializers.CharField()
