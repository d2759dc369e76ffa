"""Auth, clients, members and API keys endpoints. Thin: parse, call a service, serialize."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenBlacklistView, TokenRefreshView

from tenants import accounts, login_throttle, selectors, services
from tenants.api import serializers as s
from tenants.api.base import ClientScopedAPIView
from tenants.models import Client, Membership
from wafaa.api.pagination import StandardPagination
from wafaa.clientip import client_ip
from wafaa.errors import PermissionDeniedError, RateLimitedError


class PublicAuthApi(APIView):
    """Base of the endpoints that take no credential (sign-up, login, links from emails).

    With no authentication class DRF has no WWW-Authenticate header to send and turns every
    401 into a 403; a wrong password or an expired refresh token must stay a 401.
    """

    authentication_classes = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'


class SignUpThrottle(SimpleRateThrottle):
    """Sign-ups per caller address (SIGNUP_THROTTLE_RATE), counted in Redis."""

    scope = "signup"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}


class InvitationThrottle(SimpleRateThrottle):
    """Invitation emails per client (INVITATION_THROTTLE_RATE): our mail server is not a
    hostile client's way to spam. Checked after the client check, so callers who are not
    members cannot spend a client's budget."""

    scope = "invite"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.client.pk}


def _tokens_for(user, client_id: int | None) -> dict:
    refresh = RefreshToken.for_user(user)
    refresh["client_id"] = client_id
    return {"access": str(refresh.access_token), "refresh": str(refresh), "client_id": client_id}


class RegisterApi(PublicAuthApi):
    """Sign up: a pending sign-up and a verification email; the client comes on verification."""

    throttle_classes = [SignUpThrottle]

    @extend_schema(
        request=s.RegisterInputSerializer, responses={202: s.SignUpPendingOutputSerializer}
    )
    def post(self, request):
        data = s.RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        accounts.signup_request(**data.validated_data, ip_address=client_ip(request))
        email = data.validated_data["email"].lower()
        body = {
            "email": email,
            "detail": f"We sent a link to {email}. Open it to create your account and client.",
            "expires_in_hours": settings.SIGNUP_VERIFY_HOURS,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class VerifyEmailApi(PublicAuthApi):
    @extend_schema(request=s.TokenInputSerializer, responses={201: s.TokenPairOutputSerializer})
    def post(self, request):
        data = s.TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, client = accounts.signup_verify(token=data.validated_data["token"])
        body = _tokens_for(user, client.pk)
        body["client"] = s.ClientOutputSerializer(client).data
        return Response(body, status=status.HTTP_201_CREATED)


class LoginApi(PublicAuthApi):
    """Email and password for tokens; failures are counted by django-axes (login_throttle)."""

    @extend_schema(request=s.LoginInputSerializer, responses={200: s.TokenPairOutputSerializer})
    def post(self, request):
        data = s.LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"].lower()
        user = authenticate(request, username=email, password=data.validated_data["password"])
        if user is None:
            if getattr(request, "axes_locked_out", False):
                raise RateLimitedError(
                    login_throttle.LOCKED_MESSAGE.format(minutes=settings.LOGIN_LOCKOUT_MINUTES),
                    retry_after=login_throttle.lockout_seconds(),
                    details={"retry_after": login_throttle.lockout_seconds()},
                )
            raise AuthenticationFailed("Wrong email or password.")
        client_id = data.validated_data.get("client")
        memberships = list(user.memberships.values_list("client_id", flat=True))
        if client_id is not None:
            if client_id not in memberships and not user.is_staff:
                raise PermissionDeniedError("You are not a member of that client.")
        elif len(memberships) == 1:
            client_id = memberships[0]
        # Clears this account's failure count from this address (axes) and sets last_login.
        user_logged_in.send(sender=type(user), request=request, user=user)
        return Response(_tokens_for(user, client_id))


class SimpleJWTViewMixin:
    """simplejwt's token views, with a 401 a person can act on for a spent or bad token."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'

    def handle_exception(self, exc):
        if isinstance(exc, InvalidToken):
            exc = AuthenticationFailed(
                "The refresh token is invalid, expired, already used or logged out. Log in again."
            )
        return super().handle_exception(exc)


class RefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh (rotation + blacklist), answering the token's client id too."""

    def validate(self, attrs):
        try:
            data = super().validate(attrs)
        except get_user_model().DoesNotExist as exc:
            # simplejwt looks the user up with .get(): a deleted account would be a 500.
            raise InvalidToken("user gone") from exc
        data["client_id"] = RefreshToken(data["refresh"], verify=False).get("client_id")
        return data


class RefreshApi(SimpleJWTViewMixin, TokenRefreshView):
    serializer_class = RefreshSerializer

    @extend_schema(request=s.RefreshInputSerializer, responses={200: s.TokenPairOutputSerializer})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class LogoutApi(SimpleJWTViewMixin, TokenBlacklistView):
    """Blacklists the refresh token: it cannot be refreshed again (access tokens run out)."""

    @extend_schema(request=s.RefreshInputSerializer, responses={204: None})
    def post(self, request, *args, **kwargs):
        super().post(request, *args, **kwargs)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAcceptApi(PublicAuthApi):
    """Accept through the emailed link (a new person also chooses their password here)."""

    @extend_schema(
        operation_id="auth_invitation_accept_with_link",
        request=s.InvitationAcceptInputSerializer,
        responses={200: s.InvitationAcceptedOutputSerializer},
    )
    def post(self, request):
        data = s.InvitationAcceptInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership, user, created = accounts.invitation_accept(**data.validated_data)
        body = {
            "client": s.ClientBriefSerializer(membership.client).data,
            "role": membership.role,
            "account_created": created,
        }
        if created:
            # They just chose the password: as good as a login. An existing account logs in
            # with its own password; the link proves the mailbox, not the account.
            body.update(_tokens_for(user, membership.client_id))
        return Response(body)


class MyInvitationsApi(APIView):
    """The logged-in person's pending invitations (addressed to their account's email)."""

    @extend_schema(responses={200: s.MyInvitationOutputSerializer(many=True)})
    def get(self, request):
        user = _person(request)
        invitations = selectors.invitation_pending_for_user(user=user)
        return Response(s.MyInvitationOutputSerializer(invitations, many=True).data)


class MyInvitationAcceptApi(APIView):
    @extend_schema(
        operation_id="auth_invitation_accept_logged_in",
        request=None,
        responses={200: s.InvitationAcceptedOutputSerializer},
    )
    def post(self, request, invitation_id):
        user = _person(request)
        membership = accounts.invitation_accept_as_user(invitation_id=invitation_id, user=user)
        body = {
            "client": s.ClientBriefSerializer(membership.client).data,
            "role": membership.role,
            "account_created": False,
        }
        return Response(body)


def _person(request):
    if getattr(request.user, "api_key", None) is not None:
        raise PermissionDeniedError("Invitations are for people: log in with your own account.")
    return request.user


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
        request=s.MembershipInviteInputSerializer, responses={202: s.InvitationOutputSerializer}
    )
    def post(self, request, client_id):
        data = s.MembershipInviteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        throttle = InvitationThrottle()
        if not throttle.allow_request(request, self):
            self.throttled(request, throttle.wait())
        invitation = accounts.invitation_create(
            client=request.client, invited_by=request.user, **data.validated_data
        )
        # Accepted, not done: the invitee joins when they accept the emailed invitation.
        return Response(s.InvitationOutputSerializer(invitation).data, status=202)


class InvitationListApi(ClientScopedAPIView):
    required_role = Membership.Role.ADMIN

    @extend_schema(responses={200: s.InvitationOutputSerializer(many=True)})
    def get(self, request, client_id):
        queryset = selectors.invitation_list(client=request.client)
        return self.paginate(request, queryset, s.InvitationOutputSerializer)


class InvitationRevokeApi(ClientScopedAPIView):
    required_role = Membership.Role.ADMIN

    @extend_schema(responses={204: None})
    def delete(self, request, client_id, invitation_id):
        accounts.invitation_revoke(client=request.client, invitation_id=invitation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


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
