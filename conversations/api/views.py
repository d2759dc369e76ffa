"""Conversations, contacts and usage endpoints (client-scoped). Thin."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from conversations import agent_outbound, evaluation, handoff, selectors
from conversations.api import serializers as s
from tenants.api.base import ClientScopedAPIView
from wafaa.api.parsers import SafeJSONParser


def _actor(request) -> str:
    api_key = getattr(request.user, "api_key", None)
    return f"api-key:{api_key.prefix}" if api_key else request.user.email


def _conversation_or_404(conversation_id, *, with_transcript: bool = False):
    get = selectors.conversation_get if with_transcript else selectors.conversation_get_plain
    conversation = get(conversation_id=conversation_id)
    if conversation is None:
        raise NotFound("No such conversation in this client.")
    return conversation


class ConversationListApi(ClientScopedAPIView):
    @extend_schema(
        parameters=[s.ConversationFilterSerializer],
        responses={200: s.ConversationOutputSerializer(many=True)},
    )
    def get(self, request, client_id):
        filters = s.ConversationFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        queryset = selectors.conversation_list(
            mode=data.get("mode"),
            channel=data.get("channel"),
            contact_id=data.get("contact"),
            updated_since=data.get("updated_since"),
            ad_source_id=data.get("ad_source_id"),
            from_ad=data.get("from_ad"),
        )
        return self.paginate(request, queryset, s.ConversationOutputSerializer)


class ConversationDetailApi(ClientScopedAPIView):
    @extend_schema(responses={200: s.ConversationDetailOutputSerializer})
    def get(self, request, client_id, conversation_id):
        conversation = _conversation_or_404(conversation_id, with_transcript=True)
        return Response(s.ConversationDetailOutputSerializer(conversation).data)


class ConversationMessageCreateApi(ClientScopedAPIView):
    """An agent's reply, sent to the customer through the channel."""

    @extend_schema(request=s.AgentReplyInputSerializer, responses={201: s.MessageOutputSerializer})
    def post(self, request, client_id, conversation_id):
        data = s.AgentReplyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = handoff.agent_reply(
            conversation=_conversation_or_404(conversation_id),
            text=data.validated_data["text"],
            agent_email=_actor(request),
        )
        return Response(s.MessageOutputSerializer(message).data, status=status.HTTP_201_CREATED)


class ConversationTemplateSendApi(ClientScopedAPIView):
    """Send an approved WhatsApp template (e.g. to reopen a conversation after 24 hours)."""

    @extend_schema(
        request=s.TemplateSendInputSerializer, responses={201: s.MessageOutputSerializer}
    )
    def post(self, request, client_id, conversation_id):
        data = s.TemplateSendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = agent_outbound.template_send(
            conversation=_conversation_or_404(conversation_id),
            agent_email=_actor(request),
            **data.validated_data,
        )
        return Response(s.MessageOutputSerializer(message).data, status=status.HTTP_201_CREATED)


class ConversationMediaReplyApi(ClientScopedAPIView):
    """An agent's image, video, audio or document: multipart `file` or JSON `url`."""

    parser_classes = [MultiPartParser, SafeJSONParser]

    @extend_schema(
        request={
            "multipart/form-data": s.MediaReplyInputSerializer,
            "application/json": s.MediaReplyInputSerializer,
        },
        responses={201: s.MessageOutputSerializer},
    )
    def post(self, request, client_id, conversation_id):
        data = s.MediaReplyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        message = agent_outbound.agent_media_reply(
            conversation=_conversation_or_404(conversation_id),
            agent_email=_actor(request),
            kind=values["type"],
            url=values.get("url", ""),
            upload=values.get("file"),
            caption=values["caption"],
            filename=values["filename"],
        )
        return Response(s.MessageOutputSerializer(message).data, status=status.HTTP_201_CREATED)


class ConversationHandoffApi(ClientScopedAPIView):
    @extend_schema(request=None, responses={200: s.ConversationOutputSerializer})
    def post(self, request, client_id, conversation_id):
        conversation = handoff.conversation_handoff(
            conversation=_conversation_or_404(conversation_id),
            reason="agent_took_over",
            actor=_actor(request),
        )
        return Response(s.ConversationOutputSerializer(conversation).data)


class ConversationReadApi(ClientScopedAPIView):
    """A person has read the conversation (the inbox does this when it is opened)."""

    @extend_schema(request=None, responses={200: s.ConversationOutputSerializer})
    def post(self, request, client_id, conversation_id):
        conversation = _conversation_or_404(conversation_id)
        handoff.conversation_mark_read(conversation_id=conversation.pk)
        conversation.refresh_from_db()
        return Response(s.ConversationOutputSerializer(conversation).data)


class ConversationResumeApi(ClientScopedAPIView):
    @extend_schema(request=None, responses={200: s.ConversationOutputSerializer})
    def post(self, request, client_id, conversation_id):
        conversation = handoff.conversation_resume(
            conversation=_conversation_or_404(conversation_id), actor=_actor(request)
        )
        return Response(s.ConversationOutputSerializer(conversation).data)


class ConversationCloseApi(ClientScopedAPIView):
    @extend_schema(request=None, responses={200: s.ConversationOutputSerializer})
    def post(self, request, client_id, conversation_id):
        conversation = handoff.conversation_close(
            conversation=_conversation_or_404(conversation_id), actor=_actor(request)
        )
        return Response(s.ConversationOutputSerializer(conversation).data)


class ContactListApi(ClientScopedAPIView):
    @extend_schema(responses={200: s.ContactOutputSerializer(many=True)})
    def get(self, request, client_id):
        queryset = selectors.contact_list(channel=request.query_params.get("channel"))
        return self.paginate(request, queryset, s.ContactOutputSerializer)


class ContactDetailApi(ClientScopedAPIView):
    @extend_schema(responses={200: s.ContactOutputSerializer})
    def get(self, request, client_id, contact_id):
        contact = selectors.contact_get(contact_id=contact_id)
        if contact is None:
            raise NotFound("No such contact in this client.")
        return Response(s.ContactOutputSerializer(contact).data)


class UsageApi(ClientScopedAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("from", str), OpenApiParameter("to", str)],
        responses={200: s.UsageOutputSerializer(many=True)},
    )
    def get(self, request, client_id):
        filters = s.UsageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        end = filters.validated_data.get("to") or timezone.localdate()
        start = filters.validated_data.get("from") or end - timedelta(days=29)
        if start > end:
            raise ValidationError({"from": ["'from' must not be after 'to'."]})
        rows = selectors.usage_list(client=request.client, start=start, end=end)
        data = s.UsageOutputSerializer(rows, many=True).data
        totals = {
            key: sum(row[key] for row in data)
            for key in (
                "messages_in",
                "messages_out",
                "bot_answers",
                "handoffs",
                "prompt_tokens",
                "completion_tokens",
            )
        }
        ads = s.AdUsageOutputSerializer(selectors.ad_usage_list(start=start, end=end), many=True)
        return Response({"from": start, "to": end, "days": data, "totals": totals, "ads": ads.data})


class OrderListApi(ClientScopedAPIView):
    """Orders customers placed from the catalogue (WhatsApp), newest first."""

    @extend_schema(
        parameters=[OpenApiParameter("conversation", int)],
        responses={200: s.OrderOutputSerializer(many=True)},
    )
    def get(self, request, client_id):
        conversation = request.query_params.get("conversation")
        if conversation is not None and not conversation.isdigit():
            raise ValidationError({"conversation": ["Must be a conversation id."]})
        queryset = selectors.order_list(conversation_id=int(conversation) if conversation else None)
        return self.paginate(request, queryset, s.OrderOutputSerializer)


class CallbackSecretRotateApi(ClientScopedAPIView):
    """A new signing secret for the client's callback URL, shown once."""

    required_role = "admin"

    @extend_schema(request=None, responses={200: s.CallbackSecretOutputSerializer})
    def post(self, request, client_id):
        from tenants.services import callback_secret_rotate

        secret = callback_secret_rotate(client=request.client)
        return Response({"callback_url": request.client.callback_url, "callback_secret": secret})


class AnswerEvaluationStartApi(ClientScopedAPIView):
    """Run a question set through the bot's reply drafting, in a worker (nothing is sent).

    202 with the run; GET its URL for progress and, when done, the rates per language and a
    suggested confidence threshold (see docs/knowledge.md, "Evaluating answers").
    """

    required_role = "admin"
    parser_classes = [MultiPartParser, SafeJSONParser]

    @extend_schema(
        request={
            "multipart/form-data": s.EvaluationStartInputSerializer,
            "application/json": s.EvaluationStartInputSerializer,
        },
        responses={202: s.EvaluationOutputSerializer},
    )
    def post(self, request, client_id):
        data = s.EvaluationStartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload, listed = data.validated_data.get("file"), data.validated_data.get("questions")
        if upload is not None:
            # Read no more than the cap (and one byte to tell that it was over).
            content = upload.read(evaluation.MAX_FILE_BYTES + 1)
            questions = evaluation.parse_questions(content, filename=upload.name)
        elif listed:
            questions = evaluation.questions_from_items(listed)
        else:
            raise ValidationError({"questions": ["Send a question file or a list of questions."]})
        run = evaluation.evaluation_start(questions=questions, created_by_email=_actor(request))
        return Response(s.EvaluationOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class AnswerEvaluationDetailApi(ClientScopedAPIView):
    required_role = "admin"

    @extend_schema(responses={200: s.EvaluationOutputSerializer})
    def get(self, request, client_id, evaluation_id):
        run = selectors.answer_evaluation_get(evaluation_id=evaluation_id)
        if run is None:
            raise NotFound("No such evaluation in this client.")
        return Response(s.EvaluationOutputSerializer(run).data)
