"""Channel accounts of a client (owner/admin). Thin."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from channels_app import selectors, services
from channels_app.api import serializers as s
from channels_app.checks import channel_account_check
from channels_app.templates import whatsapp_template_list
from tenants.api.base import ClientScopedAPIView
from tenants.models import Membership


class ChannelAccountListCreateApi(ClientScopedAPIView):
    required_role = Membership.Role.ADMIN

    @extend_schema(responses={200: s.ChannelAccountOutputSerializer(many=True)})
    def get(self, request, client_id):
        return self.paginate(
            request,
            selectors.channel_account_list(client=request.client),
            s.ChannelAccountOutputSerializer,
        )

    @extend_schema(
        request=s.ChannelAccountCreateInputSerializer,
        responses={201: s.ChannelAccountOutputSerializer},
    )
    def post(self, request, client_id):
        data = s.ChannelAccountCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = services.channel_account_create(client=request.client, **data.validated_data)
        return Response(
            s.ChannelAccountOutputSerializer(account).data, status=status.HTTP_201_CREATED
        )


class ChannelAccountDetailApi(ClientScopedAPIView):
    required_role = Membership.Role.ADMIN

    def _account(self, request, channel_id):
        account = selectors.channel_account_get(client=request.client, account_id=channel_id)
        if account is None:
            raise NotFound("No such channel account in this client.")
        return account

    @extend_schema(responses={200: s.ChannelAccountOutputSerializer})
    def get(self, request, client_id, channel_id):
        return Response(s.ChannelAccountOutputSerializer(self._account(request, channel_id)).data)

    @extend_schema(
        request=s.ChannelAccountUpdateInputSerializer,
        responses={200: s.ChannelAccountOutputSerializer},
    )
    def patch(self, request, client_id, channel_id):
        data = s.ChannelAccountUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = services.channel_account_update(
            account=self._account(request, channel_id), data=data.validated_data
        )
        return Response(s.ChannelAccountOutputSerializer(account).data)

    @extend_schema(responses={204: None})
    def delete(self, request, client_id, channel_id):
        self._account(request, channel_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelTemplateListApi(ClientScopedAPIView):
    """A WhatsApp channel's approved message templates (cached; `?refresh=true` asks Meta)."""

    @extend_schema(responses={200: s.TemplateOutputSerializer(many=True)})
    def get(self, request, client_id, channel_id):
        account = selectors.channel_account_get(client=request.client, account_id=channel_id)
        if account is None:
            raise NotFound("No such channel account in this client.")
        refresh = request.query_params.get("refresh") in ("1", "true")
        templates = whatsapp_template_list(account=account, refresh=refresh)
        return Response({"results": s.TemplateOutputSerializer(templates, many=True).data})


class ChannelCheckApi(ClientScopedAPIView):
    """Ask Meta now whether this account's token works and has the permissions needed."""

    required_role = Membership.Role.ADMIN

    @extend_schema(request=None, responses={200: s.ChannelCheckOutputSerializer})
    def post(self, request, client_id, channel_id):
        account = selectors.channel_account_get(client=request.client, account_id=channel_id)
        if account is None:
            raise NotFound("No such channel account in this client.")
        result = channel_account_check(account=account)
        return Response(s.ChannelCheckOutputSerializer(result.as_dict()).data)
