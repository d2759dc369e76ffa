"""Input and output serializers for auth, clients, members and API keys."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from tenants.models import APIKey, Client, Invitation, Membership, validate_callback_url
from wafaa.api.serializers import StrictInputSerializer


class RegisterInputSerializer(StrictInputSerializer):
    email = serializers.EmailField()
    password = serializers.CharField(min_length=8, max_length=128, write_only=True)
    name = serializers.CharField(max_length=150, required=False, default="")
    client_name = serializers.CharField(max_length=200)
    client_slug = serializers.CharField(max_length=42)


class LoginInputSerializer(StrictInputSerializer):
    email = serializers.EmailField()
    password = serializers.CharField(max_length=128)
    client = serializers.IntegerField(required=False, help_text="Client id to act for.")


class RefreshInputSerializer(StrictInputSerializer):
    refresh = serializers.CharField()


class TokenInputSerializer(StrictInputSerializer):
    token = serializers.CharField(max_length=200)


class InvitationAcceptInputSerializer(StrictInputSerializer):
    token = serializers.CharField(max_length=200)
    password = serializers.CharField(
        min_length=8,
        max_length=128,
        required=False,
        default="",
        write_only=True,
        help_text="Required when the invited address has no account yet; ignored otherwise.",
    )
    name = serializers.CharField(max_length=150, required=False, default="")


class SignUpPendingOutputSerializer(serializers.Serializer):
    email = serializers.EmailField()
    detail = serializers.CharField()
    expires_in_hours = serializers.IntegerField()


class TokenPairOutputSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    client_id = serializers.IntegerField(allow_null=True)


class ClientOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Client
        fields = [
            "id",
            "name",
            "slug",
            "status",
            "api_requests_per_minute",
            "messages_per_day",
            "max_documents",
            "max_upload_bytes",
            "llm_concurrency",
            "max_chunks_per_document",
            "max_chunks",
            "bot_name",
            "persona",
            "languages",
            "llm_model",
            "handoff_keywords",
            "confidence_threshold",
            "fallback_message",
            "unsupported_media",
            "callback_url",
            "created_at",
            "updated_at",
        ]


class ClientCreateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.CharField(max_length=42)
    status = serializers.ChoiceField(choices=Client.Status.choices, required=False)
    api_requests_per_minute = serializers.IntegerField(min_value=1, required=False)
    messages_per_day = serializers.IntegerField(min_value=0, required=False)
    max_documents = serializers.IntegerField(min_value=0, required=False)
    max_upload_bytes = serializers.IntegerField(min_value=1, required=False)
    llm_concurrency = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    max_chunks_per_document = serializers.IntegerField(min_value=1, required=False)
    max_chunks = serializers.IntegerField(min_value=0, required=False)
    bot_name = serializers.CharField(max_length=80, required=False)
    persona = serializers.CharField(required=False, allow_blank=True)
    languages = serializers.ListField(child=serializers.CharField(max_length=10), required=False)
    llm_model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    handoff_keywords = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False
    )
    confidence_threshold = serializers.FloatField(min_value=0, max_value=1, required=False)
    fallback_message = serializers.CharField(required=False, allow_blank=True)
    unsupported_media = serializers.ChoiceField(
        choices=Client.UnsupportedMedia.choices, required=False
    )
    # https, a public address (every address of the name), an allowed port: wafaa.netguard.
    callback_url = serializers.URLField(
        max_length=200, required=False, allow_blank=True, validators=[validate_callback_url]
    )


class ClientUpdateInputSerializer(ClientCreateInputSerializer):
    def __init__(self, *args, partial=False, **kwargs):
        super().__init__(*args, partial=partial, **kwargs)
        self.fields.pop("slug")
        if not partial:
            self.fields["name"].required = True


class UserOutputSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="first_name")

    class Meta:
        model = get_user_model()
        fields = ["id", "email", "name", "is_staff"]


class MembershipOutputSerializer(serializers.ModelSerializer):
    user = UserOutputSerializer()

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]


class MembershipInviteInputSerializer(StrictInputSerializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.AGENT)


class MeMembershipSerializer(serializers.ModelSerializer):
    client = ClientOutputSerializer()

    class Meta:
        model = Membership
        fields = ["role", "client"]


class APIKeyOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = APIKey
        fields = ["id", "name", "prefix", "role", "created_at", "last_used_at", "revoked_at"]


class APIKeyCreateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(
        choices=[Membership.Role.ADMIN, Membership.Role.AGENT], default=Membership.Role.ADMIN
    )


class InvitationOutputSerializer(serializers.ModelSerializer):
    """What the inviter sees: only what they typed, and the invitation's own state."""

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "created_at", "expires_at"]


class ClientBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Client
        fields = ["id", "name", "slug"]


class MyInvitationOutputSerializer(serializers.ModelSerializer):
    client = ClientBriefSerializer()

    class Meta:
        model = Invitation
        fields = ["id", "client", "role", "created_at", "expires_at"]


class InvitationAcceptedOutputSerializer(serializers.Serializer):
    client = ClientBriefSerializer()
    role = serializers.CharField()
    account_created = serializers.BooleanField()
    access = serializers.CharField(required=False)
    refresh = serializers.CharField(required=False)
    client_id = serializers.IntegerField(required=False)
