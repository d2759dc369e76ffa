from rest_framework import serializers

from conversations.models import Contact, Conversation, ConversationEvent, Message
from tenants.models import DailyUsage
from wafaa.api.serializers import StrictInputSerializer


class ContactOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Contact
        fields = [
            "id",
            "channel",
            "external_id",
            "wa_id",
            "user_id",
            "name",
            "phone",
            "first_seen_at",
            "last_seen_at",
            "previous_wa_ids",
            "identity_changed_at",
        ]


class MessageOutputSerializer(serializers.ModelSerializer):
    deleted = serializers.SerializerMethodField()
    edited = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "direction",
            "author",
            "type",
            "text",
            "media_id",
            "media_mime_type",
            "external_id",
            "status",
            "failure_reason",
            "failure_detail",
            "citations",
            "model",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms",
            "trace_id",
            "author_email",
            "created_at",
            "sent_at",
            "delivered_at",
            "read_at",
            "reply_to_external_id",
            "payload",
            "media_url",
            "attachments",
            "order",
            "referral",
            "errors",
            "call_permission",
            "transcript",
            "template",
            "buttons",
            "edited",
            "edited_at",
            "deleted",
            "deleted_at",
        ]

    def get_deleted(self, message) -> bool:
        return message.deleted_at is not None

    def get_edited(self, message) -> bool:
        return message.edited_at is not None


class EventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConversationEvent
        fields = ["kind", "actor", "detail", "created_at"]


class ConversationOutputSerializer(serializers.ModelSerializer):
    contact = ContactOutputSerializer()

    class Meta:
        model = Conversation
        fields = [
            "id",
            "contact",
            "channel",
            "channel_account_id",
            "mode",
            "assigned_agent_email",
            "handoff_reason",
            "handoff_at",
            "last_inbound_at",
            "last_outbound_at",
            "unread_count",
            "ad_source_type",
            "ad_source_id",
            "ad_source_url",
            "ad_headline",
            "ad_ctwa_clid",
            "ad_referred_at",
            "created_at",
            "updated_at",
        ]


class ConversationDetailOutputSerializer(ConversationOutputSerializer):
    messages = MessageOutputSerializer(many=True)
    events = EventOutputSerializer(many=True)

    class Meta(ConversationOutputSerializer.Meta):
        fields = [*ConversationOutputSerializer.Meta.fields, "messages", "events"]


class ConversationFilterSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Conversation.Mode.choices, required=False)
    channel = serializers.ChoiceField(choices=["whatsapp", "instagram"], required=False)
    contact = serializers.IntegerField(required=False)
    updated_since = serializers.DateTimeField(required=False)
    ad_source_id = serializers.CharField(required=False, max_length=128)
    from_ad = serializers.BooleanField(required=False, allow_null=True, default=None)


class OrderOutputSerializer(serializers.ModelSerializer):
    """An order a customer placed from the catalogue, with where it came from."""

    conversation_id = serializers.IntegerField()
    contact = ContactOutputSerializer(source="conversation.contact")
    summary = serializers.CharField(source="text")

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation_id",
            "contact",
            "external_id",
            "order",
            "summary",
            "referral",
            "created_at",
        ]


class AdUsageOutputSerializer(serializers.Serializer):
    source_id = serializers.CharField()
    source_type = serializers.CharField()
    headline = serializers.CharField()
    messages = serializers.IntegerField()
    conversations = serializers.IntegerField()


class TemplateSendInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=512)
    language = serializers.CharField(max_length=16)
    parameters = serializers.ListField(
        child=serializers.CharField(max_length=1024, trim_whitespace=True),
        required=False,
        default=list,
        max_length=20,
    )


class MediaReplyInputSerializer(StrictInputSerializer):
    """`file` (multipart) or `url` (an https link Meta fetches), one of them."""

    type = serializers.ChoiceField(choices=["image", "video", "audio", "document"])
    url = serializers.URLField(required=False, max_length=2000)
    file = serializers.FileField(required=False)
    caption = serializers.CharField(required=False, default="", allow_blank=True, max_length=1024)
    filename = serializers.CharField(required=False, default="", allow_blank=True, max_length=240)

    def validate(self, attrs):
        if bool(attrs.get("url")) == bool(attrs.get("file")):
            raise serializers.ValidationError("Give either a file or a url.")
        return attrs


class AgentReplyInputSerializer(StrictInputSerializer):
    text = serializers.CharField(max_length=4096, trim_whitespace=True)


class UsageFilterSerializer(serializers.Serializer):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD (both inclusive; default: the last 30 days)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `from` is a Python keyword, so these fields are added by name.
        self.fields["from"] = serializers.DateField(required=False)
        self.fields["to"] = serializers.DateField(required=False)


class UsageOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = DailyUsage
        fields = [
            "day",
            "messages_in",
            "messages_out",
            "bot_answers",
            "handoffs",
            "prompt_tokens",
            "completion_tokens",
        ]


class CallbackSecretOutputSerializer(serializers.Serializer):
    callback_url = serializers.URLField()
    callback_secret = serializers.CharField(
        help_text="Shown once; verify callbacks (webhook-signature) with it and the standardwebhooks library."
    )


class EvaluationQuestionSerializer(StrictInputSerializer):
    question = serializers.CharField(max_length=1000)
    # A fact the right answer states (or several alternatives); empty or "none": the
    # knowledge does not answer this question and the bot should abstain.
    expected = serializers.ListField(
        child=serializers.CharField(max_length=300), required=False, default=list, max_length=10
    )
    language = serializers.CharField(max_length=20, required=False, default="", allow_blank=True)


class EvaluationStartInputSerializer(StrictInputSerializer):
    """Either a question file (multipart `file`, CSV or JSONL) or a JSON list `questions`."""

    file = serializers.FileField(required=False)
    questions = EvaluationQuestionSerializer(many=True, required=False)


class EvaluationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField()
    result = serializers.JSONField(allow_null=True)
