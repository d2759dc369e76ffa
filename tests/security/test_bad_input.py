"""Finding 10 (API side) — bad input is a 4xx in the error envelope, never a 500.

Table-driven over the whole API, from the URL map itself (a new endpoint is covered without
being listed): every route that takes a body gets deeply nested JSON and JSON strings holding
NUL; every GET route gets NUL characters in its query parameters. Each answers 400
`malformed_request` in the envelope, and the client's data is unchanged (the isolation suite's
fingerprint of every row of the client).
"""

from __future__ import annotations

import json
import re

import pytest

from tenants.models import Client, Membership
from tests.routes import url_routes
from tests.tenants.factories import MembershipFactory, StaffUserFactory, api_as_user
from tests.test_isolation import CLIENT_SCOPED_ENDPOINTS, _methods, fingerprint

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
BODY_METHODS = {"POST", "PUT", "PATCH"}
# 100,000 nested arrays: a few hundred kilobytes that make json.loads raise RecursionError.
NESTED = ("[" * 100_000 + "]" * 100_000).encode()
# Parses fine, but deeper than any endpoint reads (wafaa.api.parsers.MAX_DEPTH).
DEEP = json.dumps({"name": json.loads("[" * 40 + "]" * 40)}).encode()


def api_routes() -> list[tuple[str, str]]:
    """(method, route relative to /api/v1/ in {placeholder} notation) for every API route."""
    routes = []
    for route, callback in url_routes():
        if not route.startswith(API_PREFIX):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route[len(API_PREFIX) :])
        for method in sorted(_methods(callback)):
            routes.append((method, path))
    return routes


ROUTES = api_routes()
SETUPS = {row.path: row.setup for row in CLIENT_SCOPED_ENDPOINTS}
CLIENT_SCOPED = "clients/{client_id}/"


def _url_for(path: str, tenant) -> str:
    """The route's URL in tenant A, with objects made by the isolation table's setup."""
    # auth/invitations/{invitation_id}/accept takes no body: any id shows it is not parsed.
    placeholders = {"client_id": tenant.pk, "invitation_id": 0}
    if path.startswith(CLIENT_SCOPED):
        placeholders.update(SETUPS[path[len(CLIENT_SCOPED) :]](tenant))
    return "/api/v1/" + path.format(**placeholders)


@pytest.fixture
def owner_a(tenant_a):
    user = MembershipFactory(client=tenant_a, role=Membership.Role.OWNER).user
    return api_as_user(user, tenant_a)


@pytest.fixture
def staff():
    """Platform staff may call every route (client creation too), so each one reads its body."""
    return api_as_user(StaffUserFactory())


def assert_malformed(response):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["code"] == "malformed_request"
    assert error["request_id"] and set(error) == {"code", "message", "details", "request_id"}


BODY_ROUTES = [(m, p) for m, p in ROUTES if m in BODY_METHODS]
# Actions that take no body (their OpenAPI request is empty): DRF never parses what is sent.
BODYLESS = {
    ("POST", "clients/{client_id}/conversations/{conversation_id}/handoff"),
    ("POST", "clients/{client_id}/conversations/{conversation_id}/resume"),
    ("POST", "clients/{client_id}/conversations/{conversation_id}/read"),
    ("POST", "clients/{client_id}/conversations/{conversation_id}/close"),
    ("POST", "clients/{client_id}/callback-secret"),
    ("POST", "clients/{client_id}/channels/{channel_id}/check"),
    ("POST", "clients/{client_id}/knowledge/documents/{doc_id}/reindex"),
    ("POST", "auth/invitations/{invitation_id}/accept"),
    ("POST", "clients/{client_id}/channels/{channel_id}/check"),
}
GET_ROUTES = [(m, p) for m, p in ROUTES if m == "GET"]


def test_the_tables_cover_the_api():
    assert ("POST", "auth/login") in BODY_ROUTES
    assert ("GET", "clients/{client_id}/contacts") in GET_ROUTES
    assert len(BODY_ROUTES) >= 15 and len(GET_ROUTES) >= 10


@pytest.mark.parametrize("body", [NESTED, DEEP], ids=["recursion", "too-deep"])
@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_deeply_nested_json_is_a_400_everywhere(route, body, staff, tenant_a):
    method, path = route
    url = _url_for(path, tenant_a)
    before = fingerprint(tenant_a)
    clients_before = Client.objects.count()

    response = getattr(staff, method.lower())(url, body, content_type="application/json")

    if route in BODYLESS:  # never parsed: the body cannot hurt, it is simply not read
        assert response.status_code < 500
        return
    assert_malformed(response)
    assert fingerprint(tenant_a) == before
    assert Client.objects.count() == clients_before


def test_deeply_nested_json_to_login_anonymously_is_a_400(api):
    response = api.post("/api/v1/auth/login", NESTED, content_type="application/json")
    assert_malformed(response)


@pytest.mark.parametrize("route", GET_ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_nul_in_query_parameters_is_a_400_everywhere(route, owner_a, tenant_a):
    _, path = route
    url = _url_for(path, tenant_a)

    for query in ("channel=%00", "q=%00", "status=%00&mode=%00", "page=1%00", "%00=x"):
        assert_malformed(owner_a.get(f"{url}?{query}"))


def test_the_reported_contacts_query_is_a_400_also_without_credentials(api, tenant_a):
    assert_malformed(api.get(f"/api/v1/clients/{tenant_a.pk}/contacts?channel=%00"))
    assert_malformed(api.get(f"/api/v1/clients/{tenant_a.pk}/knowledge/search?q=a%00b"))


def _with_nul(value):
    if isinstance(value, str):
        return value[:1] + "\x00" + value[1:]
    if isinstance(value, dict):
        return {key: _with_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_nul(item) for item in value]
    return value


ROWS_WITH_BODY = [row for row in CLIENT_SCOPED_ENDPOINTS if row.body]


@pytest.mark.parametrize("row", ROWS_WITH_BODY, ids=lambda row: row.id)
def test_nul_in_a_json_string_is_a_400_and_stores_nothing(row, owner_a, tenant_a):
    placeholders = row.setup(tenant_a)
    url = f"/api/v1/clients/{tenant_a.pk}/" + row.path.format(**placeholders)
    before = fingerprint(tenant_a)

    response = getattr(owner_a, row.method.lower())(
        url.rstrip("/"), json.dumps(_with_nul(row.body)), content_type="application/json"
    )

    assert_malformed(response)
    assert fingerprint(tenant_a) == before


@pytest.mark.parametrize(
    "path, body",
    [
        ("auth/login", {"email": "owner\x00@example.com", "password": "pw-123456789"}),
        (
            "auth/register",
            {
                "email": "new\x00@example.com",
                "password": "pw-123456789",
                "client_name": "Nul",
                "client_slug": "nul-shop",
            },
        ),
    ],
)
def test_nul_in_an_anonymous_json_body_is_a_400(api, path, body):
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.count()
    response = api.post(f"/api/v1/{path}", json.dumps(body), content_type="application/json")
    assert_malformed(response)
    assert get_user_model().objects.count() == users
    assert not Client.objects.filter(slug="nul-shop").exists()


def test_nul_in_the_path_is_a_400(api):
    assert_malformed(api.get("/api/v1/clients/1%00/contacts"))
