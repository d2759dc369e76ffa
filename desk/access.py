"""Who may open an inbox page: signed in, a member of the client named in the URL, with the role.

Every `/inbox/<slug>/…` view is wrapped by `client_view`, the one place the inbox scopes a
request to a client, as `tenants.api.base.ClientScopedAPIView` does for the API (and with the
same rule, `role_rank_for`): not signed in → the login page; not a member (or no such client)
→ 404, so nobody learns which clients exist; a role too low → 403; then the view runs inside
the client's schema (`tenant_context`) and renders before leaving it.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django_tenants.utils import tenant_context

from tenants import selectors
from tenants.api.base import ROLE_RANK, STAFF_RANK, role_rank_for
from tenants.models import Client, Membership

# The session remembers the client last opened, so /inbox/ goes back to it.
SESSION_CLIENT_KEY = "desk_client_slug"


def not_found(request):
    return render(request, "desk/error.html", {"status": 404}, status=404)


def forbidden(request, message=""):
    return render(request, "desk/error.html", {"status": 403, "message": message}, status=403)


def client_view(required_role: str = Membership.Role.AGENT):
    """Decorate `view(request, client, ...)` served at a URL with `<slug:slug>`."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, slug, *args, **kwargs):
            if not request.user.is_authenticated:
                if request.headers.get("HX-Request"):
                    # A poll after the session ended: the whole page goes to the login form
                    # (htmx follows HX-Redirect), not the login form into the list.
                    page = urlsplit(request.headers.get("HX-Current-URL", "")).path
                    response = HttpResponse(status=204)
                    response["HX-Redirect"] = redirect_to_login(
                        page or request.path, reverse("desk:login")
                    )["Location"]
                    return response
                return redirect_to_login(request.get_full_path(), reverse("desk:login"))
            client = selectors.client_get_by_slug_cached(slug=slug)
            rank = role_rank_for(request.user, client) if client else None
            if client is None or rank is None:
                return not_found(request)
            if not client.is_active and rank != STAFF_RANK:
                return render(request, "desk/suspended.html", {"client": client}, status=403)
            if rank < ROLE_RANK[required_role]:
                return forbidden(request)
            request.client = client
            request.role_rank = rank
            request.client_schema = client.schema_name  # for the request's log line
            if request.session.get(SESSION_CLIENT_KEY) != slug:
                request.session[SESSION_CLIENT_KEY] = slug
            with tenant_context(client):
                # Rendered here, inside the schema: a lazy queryset must not run after it.
                return view(request, client, *args, **kwargs)

        # Marks the view (functools.wraps carries it through outer decorators): a test checks
        # that every /inbox/<slug>/ route has it (tests/desk/test_isolation_sweep.py).
        wrapped.desk_required_role = required_role
        return wrapped

    return decorator


def is_admin(request) -> bool:
    return request.role_rank >= ROLE_RANK[Membership.Role.ADMIN]


def clients_of(user) -> list[Client]:
    """The clients the person is a member of (the switcher), by name."""
    return list(Client.objects.filter(memberships__user=user).order_by("name"))
