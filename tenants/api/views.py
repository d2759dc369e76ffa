"""Auth, clients, members and API keys endpoints. Thin: parse, call a service, serialize."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from tenants import selectors, services
from tenants.api import serializers as s
from tenants.api.base import ClientScopedAPIView
from tenants.models import Client, Membership
from wafaa import ratelimit
from wafaa.api.pagination import StandardPagination
from wafaa.errors import PermissionDeniedError


class PublicAuthApi(APIView):
    """Base of the endpoints that take no credential (sign-up, login, refresh, set-password).

    With no authentication class DRF has no WWW-Authenticate header to send and turns every
    401 into a 403; a wrong password or an expired refresh token must stay a 401.
    """

    authentication_classes = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'


def _tokens_for(user, client_id: int | None) -> dict:
    refresh = RefreshToken.for_user(user)
    refresh["client_id"] = client_id
    return {"access": str(refresh.access_token), "refresh": str(refresh), "client_id": client_id}


class RegisterApi(PublicAuthApi):
    @extend_schema(request=s.RegisterInputSerializer, responses={201: s.TokenPairOutputSerializer})
    def post(self, request):
        data = s.RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, client = services.user_register(**data.validated_data)
        body = _tokens_for(user, client.pk)
        body["client"] = s.ClientOutputSerializer(client).data
        return Response(body, status=status.HTTP_201_CREATED)


class LoginApi(PublicAuthApi):
    @extend_schema(request=s.LoginInputSerializer, responses={200: s.TokenPairOutputSerializer})
    def post(self, request):
        data = s.LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"].lower()
        ratelimit.check_login_allowed(email=email)
        user = authenticate(request, username=email, password=data.validated_data["password"])
        if user is None:
            ratelimit.record_login_failure(email=email)
            raise AuthenticationFailed("Wrong email or password.")
        ratelimit.clear_login_failures(email=email)
        client_id = data.validated_data.get("client")
        memberships = list(user.memberships.values_list("client_id", flat=True))
        if client_id is not None:
            if client_id not in memberships and not user.is_staff:
                raise PermissionDeniedError("You are not a member of that client.")
        elif len(memberships) == 1:
            client_id = memberships[0]
        return Response(_tokens_for(user, client_id))


class RefreshApi(PublicAuthApi):
    @extend_schema(request=s.RefreshInputSerializer, responses={200: s.TokenPairOutputSerializer})
    def post(self, request):
        data = s.RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            refresh = RefreshToken(data.validated_data["refresh"])
        except TokenError as exc:
            raise AuthenticationFailed(
                "The refresh token is invalid or expired. Log in again."
            ) from exc
        return Response(
            {
                "access": str(refresh.access_token),
                "refresh": str(refresh),
                "client_id": refresh.get("client_id"),
            }
        )


class SetPasswordApi(PublicAuthApi):
    @extend_schema(request=s.SetPasswordInputSerializer, responses={204: None})
    def post(self, request):
        data = s.SetPasswordInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_set_password(**data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    @extend_schema(responses={200: s.UserOutputSerializer})
    def get(self, request):
        if getattr(request.user, "api_key", None) is not None:
            key = request.user.api_key
            return Response(
                {
                    "api_key": s.APIKeyOutputSerializer(key).data,
                    "client": s.ClientOutputSerializer(key.client).data,
                }
            )
        memberships = request.user.memberships.select_related("client")
        return Response(
            {
                "user": s.UserOutputSerializer(request.user).data,
                "client_id": request.user.token_client_id,
                "memberships": s.MeMembershipSerializer(memberships, many=True).data,
            }
        )


class ClientListCreateApi(APIView):
    @extend_schema(responses={200: s.ClientOutputSerializer(many=True)})
    def get(self, request):
        queryset = selectors.client_list_for_user(user=request.user).order_by("name", "pk")
        paginator = StandardPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(s.ClientOutputSerializer(page, many=True).data)

    @extend_schema(request=s.ClientCreateInputSerializer, responses={201: s.ClientOutputSerializer})
    def post(self, request):
        if not request.user.is_staff:
            raise PermissionDeniedError(
                "Only platform staff create clients here; use /api/v1/auth/register to sign up."
            )
        data = s.ClientCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client = services.client_create(**data.validated_data)
        return Response(s.ClientOutputSerializer(client).data, status=status.HTTP_201_CREATED)


class ClientDetailApi(ClientScopedAPIView):
    required_role = Membership.Role.AGENT
    required_roles = {"PUT": Membership.Role.ADMIN, "PATCH": Membership.Role.ADMIN}
    allow_suspended = True

    @extend_schema(responses={200: s.ClientOutputSerializer})
    def get(self, request, client_id):
        return Response(s.ClientOutputSerializer(request.client).data)

    def _update(self, request, partial: bool):
        data = s.ClientUpdateInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        client = Client.objects.get(pk=request.client.pk)
        client = services.client_update(
            client=client, data=data.validated_data, by_staff=request.user.is_staff
        )
        return Response(s.ClientOutputSerializer(client).data)

    @extend_schema(request=s.ClientUpdateInputSerializer, responses={200: s.ClientOutputSerializer})
    def put(self, request, client_id):
        return self._update(request, partial=False)

    @extend_schema(request=s.ClientUpdateInputSerializer, responses={200: s.ClientOutputSerializer})
    def patch(self, request, client_id):
        return self._update(request, partial=True)


class MemberListInviteApi(ClientScopedAPIView):
    required_role = Membership.Role.ADMIN

    @extend_schema(responses={200: s.MembershipOutputSerializer(many=True)})
    def get(self, request, client_id):
        queryset = selectors.membership_list(client=request.client)
        return self.paginate(request, queryset, s.MembershipOutputSerializer)

    @extend_schema(
        request=s.MembershipInviteInputSerializer, responses={201: s.MembershipOutputSerializer}
    )
    def post(self, request, client_id):
        data = s.MembershipInviteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership, token = services.membership_invite(
            client=request.client, invited_by=request.user, **data.validated_data
        )
        body = s.MembershipOutputSerializer(membership).data
        if token:
            # Shown once: the new member sets a password with it at /api/v1/auth/set-password.
            body["set_password_token"] = token
        return Response(body, status=status.HTTP_201_CREATED)


class MemberRemoveApi(ClientScopedAPIView):
    required_role = Membership.Role.ADMIN

    @extend_schema(responses={204: None})
    def delete(self, request, client_id, member_id):
        services.membership_remove(
            client=request.client, membership_id=member_id, removed_by=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class APIKeyListCreateApi(ClientScopedAPIView):
    required_role = Membership.Role.ADMIN

    @extend_schema(responses={200: s.APIKeyOutputSerializer(many=True)})
    def get(self, request, client_id):
        return self.paginate(
            request, selectors.api_key_list(client=request.client), s.APIKeyOutputSerializer
        )

    @extend_schema(request=s.APIKeyCreateInputSerializer, responses={201: s.APIKeyOutputSerializer})
    def post(self, request, client_id):
        data = s.APIKeyCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, raw_key = services.api_key_create(
            client=request.client, created_by=request.user, **data.validated_data
        )
        body = s.APIKeyOutputSerializer(api_key).data
        body["key"] = raw_key  # shown once; only its hash is stored
        return Response(body, status=status.HTTP_201_CREATED)


class APIKeyRevokeApi(ClientScopedAPIView):
    required_role = Membership.Role.ADMIN

    @extend_schema(responses={200: s.APIKeyOutputSerializer})
    def delete(self, request, client_id, key_id):
        api_key = services.api_key_revoke(client=request.client, key_id=key_id)
        return Response(s.APIKeyOutputSerializer(api_key).data)
