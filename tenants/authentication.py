"""API authentication: JWT for people, API keys for servers.

Both give DRF a principal; neither decides the client. The client of a request is resolved
afterwards from the URL and checked against the credential (tenants.api.base.ClientScopedView).
"""

from __future__ import annotations

import hashlib

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework_simplejwt import authentication as jwt_authentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from tenants import selectors
from tenants.models import APIKey


class JWTAuthentication(jwt_authentication.JWTAuthentication):
    """simplejwt, with messages a person can act on."""

    def get_validated_token(self, raw_token):
        try:
            return super().get_validated_token(raw_token)
        except (InvalidToken, TokenError) as exc:
            raise exceptions.AuthenticationFailed(
                "The access token is invalid or expired. Log in again or use /api/v1/auth/refresh."
            ) from exc

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        user.token_client_id = validated_token.get("client_id")
        user.api_key = None
        return user


class APIKeyPrincipal:
    """The caller behind an API key: acts for exactly one client, with the key's role."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, api_key: APIKey):
        self.api_key = api_key
        self.pk = None
        self.id = None
        self.token_client_id = api_key.client_id

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class APIKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Api-Key <key>` or `X-API-Key: <key>`."""

    keyword = "Api-Key"

    def authenticate(self, request):
        raw = request.headers.get("X-API-Key")
        header = request.headers.get("Authorization", "")
        if not raw and header.startswith(self.keyword + " "):
            raw = header[len(self.keyword) + 1 :].strip()
        if not raw:
            return None
        api_key = selectors.api_key_get_by_hash(hashed_key=hash_api_key(raw))
        if api_key is None or not api_key.is_active:
            raise exceptions.AuthenticationFailed(
                "This API key is unknown or has been revoked. Create a new key in the API keys "
                "endpoint or the admin."
            )
        now = timezone.now()
        # Written at most once a minute: a hot key must not turn every request into a write.
        if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
            APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return APIKeyPrincipal(api_key), api_key

    def authenticate_header(self, request):
        return self.keyword
