"""The inbox's pages and htmx fragments. Each view is thin: `client_view` has checked the
person and entered the client's schema; reads go through conversations.selectors and
desk.selectors, actions through the same services as the REST API."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.cache import never_cache

from desk.access import client_view, clients_of


@never_cache
@client_view()
def inbox_view(request, client):
    return render(
        request,
        "desk/inbox.html",
        {"client": client, "clients": clients_of(request.user)},
    )
