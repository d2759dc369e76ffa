"""Base API views. Client scoping happens here, once, for every client-scoped endpoint.

A client-scoped URL carries the client id (`/api/v1/clients/<client_id>/...`). The view
checks it against the credential: an API key acts for its own client only; a user must be a
member (and, when the token names a client, that client); staff may act on any client. A
mismatch is 404, so a caller learns nothing about other clients. Then the plan's rate limit
is applied and the request runs inside the client's schema until the response is made.
"""

from __future__ import annotations

from django.db import connection
from rest_framework.exceptions import NotFound
from rest_framework.views import APIView

from tenants import selectors
from tenants.models import Client, Membership
from wafaa.api.pagination import StandardPagination
from wafaa.errors import ClientSuspendedError, PermissionDeniedError
from wafaa.ratelimit import check_rate_limit

ROLE_RANK = {Membership.Role.AGENT: 1, Membership.Role.ADMIN: 2, Membership.Role.OWNER: 3}
STAFF_RANK = 99


def role_rank_for(user, client: Client) -> int | None:
    """The caller's rank in this client, or None when the caller may not see it at all."""
    api_key = getattr(user, "api_key", None)
    if api_key is not None:
        return ROLE_RANK[api_key.role] if api_key.client_id == client.pk else None
    if user.is_staff:
        return STAFF_RANK
    token_client_id = getattr(user, "token_client_id", None)
    if token_client_id is not None and token_client_id != client.pk:
        return None
    membership = selectors.membership_get(user=user, client=client)
    return ROLE_RANK[membership.role] if membership else None


class ClientScopedAPIView(APIView):
    """Base of every view under /api/v1/clients/<client_id>/.

    Subclasses set `required_role` ('agent', 'admin' or 'owner'), optionally per method with
    `required_roles = {"POST": "admin"}`. Inside the handler, `request.client` is the client
    and the database connection is in its schema.
    """

    required_role = Membership.Role.AGENT
    required_roles: dict[str, str] = {}
    # Client management endpoints stay reachable while suspended (staff reactivate there).
    allow_suspended = False

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and permissions
        client = selectors.client_get_cached(client_id=kwargs["client_id"])
        rank = role_rank_for(request.user, client) if client else None
        if client is None or rank is None:
            raise NotFound("Not found.")
        if not client.is_active and not self.allow_suspended and rank != STAFF_RANK:
            raise ClientSuspendedError(
                "This client is suspended. Contact Wafaa support to reactivate it."
            )
        needed = self.required_roles.get(request.method, self.required_role)
        if rank < ROLE_RANK[needed]:
            raise PermissionDeniedError(f"This action needs the '{needed}' role or higher.")
        check_rate_limit(client_id=client.pk, limit=client.api_requests_per_minute)
        request.client = client
        request.role_rank = rank
        # DRF's Request wraps Django's; the request log line (middleware) reads the latter.
        request._request.client_schema = client.schema_name
        connection.set_tenant(client)

    def finalize_response(self, request, response, *args, **kwargs):
        connection.set_schema_to_public()
        return super().finalize_response(request, response, *args, **kwargs)

    def paginate(self, request, queryset, serializer_class, context=None):
        paginator = StandardPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = serializer_class(page, many=True, context=context or {"request": request}).data
        return paginator.get_paginated_response(data)
