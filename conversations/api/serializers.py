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
        ]


class MessageOutputSerializer(serializers.ModelSerializer):
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
        ]


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
        help_text="Shown once; verify X-Wafaa-Signature with it."
    )
