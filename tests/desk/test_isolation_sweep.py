"""Every inbox route under /inbox/<slug>/ is guarded by desk.access.client_view, and answers
404 to a member of another client and sends a stranger to the login page, whatever its
method: a route added later (the knowledge page) is covered without editing this file."""

from __future__ import annotations

import re

import pytest
from django.test import Client as HttpClient

from tests.desk.conftest import sign_in
from tests.routes import url_routes

PREFIX = "inbox/<slug:slug>/"


def client_routes() -> list[tuple[str, object]]:
    return [(route, view) for route, view in url_routes() if route.startswith(PREFIX)]


def test_the_inbox_has_client_routes():
    routes = [route for route, _ in client_routes()]
    assert f"{PREFIX}" in routes and f"{PREFIX}c/<int:conversation_id>/reply/" in routes


@pytest.mark.parametrize("route,view", client_routes(), ids=[r for r, _ in client_routes()])
def test_every_client_route_goes_through_client_view(route, view):
    assert getattr(view, "desk_required_role", None), (
        f"/{route} is not wrapped by desk.access.client_view: it would serve any signed-in "
        "person, in no client's schema"
    )


def _url(route: str, slug: str, conversation_id: int) -> str:
    path = route.replace("<slug:slug>", slug)
    path = path.replace("<int:conversation_id>", str(conversation_id))
    path = re.sub(r"<uuid:\w+>", "00000000-0000-4000-8000-000000000001", path)  # a document
    return "/" + re.sub(r"<(?:\w+:)?\w+>", "1", path)  # any other id: refused before it is read


def test_a_member_of_b_gets_404_on_every_route_of_a(member, tenant_a, tenant_b, conversation):
    http = sign_in(member("owner", client=tenant_b))
    stranger = HttpClient()
    for route, _ in client_routes():
        url = _url(route, tenant_a.slug, conversation.pk)
        statuses = set()
        for method in ("get", "post"):
            status = getattr(http, method)(url).status_code
            statuses.add(status)
            assert status in {404, 405}, (method, url, status)
            answer = getattr(stranger, method)(url)
            assert answer.status_code in {302, 405}, (method, url, answer.status_code)
            if answer.status_code == 302:
                assert answer["Location"].startswith("/inbox/login/")
        assert 404 in statuses, url  # the method it serves is refused as "not found"
