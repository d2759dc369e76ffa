"""THE isolation suite: every client-scoped endpoint, called with another client's credentials.

For each row of CLIENT_SCOPED_ENDPOINTS the object is created in client A, then the URL is
called by:

    owner_a          A's owner (JWT bound to A)            -> row.status
    staff            platform staff (JWT, no client)       -> row.status
    owner_b_jwt      B's owner                             -> 404, nothing in A changed
    admin_key_b      B's admin API key                     -> 404, nothing in A changed
    outsider         a user with no membership             -> 404, nothing in A changed
    token_bound_to_b a member of A and B, token bound to B -> 404, nothing in A changed

"Nothing changed" is checked on the database itself: every row of A's schema, A's client row
and A's rows in each public table with a client_id column (see `fingerprint`).

HOW TO ADD AN ENDPOINT (test_every_client_scoped_route_is_in_the_table fails until you do):
  1. If its URL names an object, write `def make_<thing>(client) -> dict` that creates one in
     `client` and returns the placeholder values, e.g. {"document_id": document.pk}. It is
     called in the public schema; wrap client-schema writes in `inside(client)`.
  2. Add one Row per HTTP method, the path relative to /api/v1/clients/{client_id}/:
         Row("POST", "documents/{document_id}/reindex", make_document, 202, body={...}),
     `status` is what A's owner and staff get, `body` a valid body for that success.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.db import connection

from conversations import services as conversation_services
from conversations.models import Conversation
from tenants import accounts
from tenants.api.base import ClientScopedAPIView
from tenants.models import Membership
from tests.conftest import inside
from tests.conversations.helpers import add_faq_knowledge, inbound
from tests.factories import ChannelAccountFactory
from tests.routes import url_routes
from tests.tenants.factories import (
    MembershipFactory,
    StaffUserFactory,
    UserFactory,
    api_as_user,
    api_key_for,
    api_with_key,
    reset_api_state,
)

CLIENT_PREFIX = "api/v1/clients/<int:client_id>"


# --- setup functions: create an object in `client`, return the URL placeholders ---------------


def no_setup(client) -> dict:
    return {}


def make_member(client) -> dict:
    return {"member_id": MembershipFactory(client=client, role=Membership.Role.AGENT).pk}


def make_invitation(client) -> dict:
    invitation = accounts.invitation_create(
        client=client,
        email=f"invited-{uuid.uuid4().hex[:8]}@example.com",
        role="agent",
        invited_by=None,
    )
    return {"invitation_id": invitation.pk}


def make_api_key(client) -> dict:
    api_key, _ = api_key_for(client, role=Membership.Role.AGENT, name="in A")
    return {"key_id": api_key.pk}


def _unique_digits() -> str:
    return str(uuid.uuid4().int)[:15]


def make_channel(client) -> dict:
    return {"channel_id": ChannelAccountFactory(client=client, external_id=_unique_digits()).pk}


def make_document(client) -> dict:
    with inside(client):
        return {"doc_id": add_faq_knowledge().pk}


def make_conversation(client) -> dict:
    phone_id = _unique_digits()
    account = ChannelAccountFactory(client=client, external_id=phone_id)
    with inside(client):
        message, _ = conversation_services.message_receive(
            account=account, inbound=inbound("Hello, are you open today?", phone_id=phone_id)
        )
        conversation = Conversation.objects.get(pk=message.conversation_id)
    return {"conversation_id": conversation.pk, "contact_id": conversation.contact_id}


def make_evaluation(client) -> dict:
    from conversations.models import AnswerEvaluation

    with inside(client):
        run = AnswerEvaluation.objects.create(
            questions=[{"question": "When do you open?", "expected": ["8am"], "language": "en"}],
            total=1,
        )
    return {"evaluation_id": run.pk}


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # relative to /api/v1/clients/{client_id}/; "" is the client itself
    setup: Callable[[object], dict] = no_setup
    status: int = 200
    body: dict | None = field(default=None, hash=False)
    query: str = ""  # a query string for GETs, e.g. "q=opening+hours"

    @property
    def id(self) -> str:
        return f"{self.method} {self.path or '.'}"


CLIENT_SCOPED_ENDPOINTS = [
    # tenants
    Row("GET", ""),
    Row("PUT", "", body={"name": "Renamed by the caller"}),
    Row("PATCH", "", body={"bot_name": "Changed by the caller"}),
    Row("GET", "members"),
    Row("POST", "members", status=202, body={"email": "new-member@example.com"}),
    Row("DELETE", "members/{member_id}", make_member, 204),
    Row("GET", "invitations", make_invitation),
    Row("DELETE", "invitations/{invitation_id}", make_invitation, 204),
    Row("GET", "api-keys"),
    Row("POST", "api-keys", status=201, body={"name": "made by the caller"}),
    Row("DELETE", "api-keys/{key_id}", make_api_key),
    # channels_app
    Row("GET", "channels", make_channel),
    Row(
        "POST",
        "channels",
        status=201,
        body={
            "kind": "whatsapp",
            "external_id": "198765432109876",
            "access_token": "EAAcallers-token-0001",
            "app_secret": "callers-app-secret",
        },
    ),
    Row("GET", "channels/{channel_id}", make_channel),
    Row("PATCH", "channels/{channel_id}", make_channel, body={"name": "renamed"}),
    Row("DELETE", "channels/{channel_id}", make_channel, 204),
    # 200 with access "unavailable": the test settings point the Graph API at a closed port.
    Row("POST", "channels/{channel_id}/check", make_channel),
    # 409: the channel has no business_account_id, so Meta is not asked (no Graph call here).
    Row("GET", "channels/{channel_id}/templates", make_channel, 409),
    # conversations
    Row("GET", "conversations", make_conversation),
    Row("GET", "conversations/{conversation_id}", make_conversation),
    Row(
        "POST",
        "conversations/{conversation_id}/messages",
        make_conversation,
        201,
        body={"text": "A person answering"},
    ),
    Row(
        "POST",
        "conversations/{conversation_id}/media",
        make_conversation,
        201,
        body={"type": "image", "url": "https://shop.example/menu.png"},
    ),
    Row(
        "POST",
        "conversations/{conversation_id}/templates",
        make_conversation,
        409,
        body={"name": "order_ready", "language": "en"},
    ),
    Row("POST", "conversations/{conversation_id}/handoff", make_conversation),
    Row("POST", "conversations/{conversation_id}/resume", make_conversation),
    Row("POST", "conversations/{conversation_id}/read", make_conversation),
    Row("POST", "conversations/{conversation_id}/close", make_conversation),
    Row("GET", "contacts", make_conversation),
    Row("GET", "contacts/{contact_id}", make_conversation),
    Row("GET", "usage"),
    Row("GET", "orders", make_conversation),
    Row("POST", "callback-secret"),
    # knowledge
    Row(
        "POST",
        "knowledge/upload",
        status=202,
        body={"title": "Prices", "text": "A cappuccino costs 18 MAD. Tea costs 10 MAD."},
    ),
    Row("GET", "knowledge/documents", make_document),
    Row("GET", "knowledge/documents/{doc_id}", make_document),
    Row("DELETE", "knowledge/documents/{doc_id}", make_document, 204),
    Row("POST", "knowledge/documents/{doc_id}/reindex", make_document, 202),
    Row("GET", "knowledge/search", make_document, query="q=opening+hours"),
    Row(
        "POST",
        "knowledge/evaluate",
        status=202,
        body={"questions": [{"question": "When do you open?", "expected": ["8am"]}]},
    ),
    Row("GET", "knowledge/evaluate/{evaluation_id}", make_evaluation),
]

ALLOWED = ["owner_a", "staff"]
DENIED = ["owner_b_jwt", "admin_key_b", "outsider", "token_bound_to_b"]


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_api_state(redis_client):
    reset_api_state(redis_client)
    yield
    reset_api_state(redis_client)


@pytest.fixture(autouse=True)
def graph_accepts_the_callers_channel(fake_graph):
    """Connecting a channel asks Meta whether the token may use the id (the fake answers)."""
    fake_graph.add_account("198765432109876", "EAAcallers-token-0001")


def caller(name: str, tenant_a, tenant_b):
    if name == "owner_a":
        user = MembershipFactory(client=tenant_a, role=Membership.Role.OWNER).user
        return api_as_user(user, tenant_a)
    if name == "staff":
        return api_as_user(StaffUserFactory())
    if name == "owner_b_jwt":
        user = MembershipFactory(client=tenant_b, role=Membership.Role.OWNER).user
        return api_as_user(user, tenant_b)
    if name == "admin_key_b":
        return api_with_key(api_key_for(tenant_b, role=Membership.Role.ADMIN)[1])
    if name == "outsider":
        return api_as_user(UserFactory())
    if name == "token_bound_to_b":
        user = UserFactory()
        Membership.objects.create(user=user, client=tenant_a, role=Membership.Role.OWNER)
        Membership.objects.create(user=user, client=tenant_b, role=Membership.Role.OWNER)
        return api_as_user(user, tenant_b)
    raise ValueError(name)


def fingerprint(client) -> dict[str, str]:
    """A digest of every row that is `client`'s, table by table, read from the database."""
    digest = "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'client_id'"
        )
        public_tables = sorted(row[0] for row in cursor.fetchall())
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            [client.schema_name],
        )
        schema_tables = sorted(row[0] for row in cursor.fetchall())
        assert schema_tables, f"no tables in {client.schema_name}"
        result = {}
        cursor.execute(digest.format("public.tenants_client") + " WHERE id = %s", [client.pk])
        result["public.tenants_client"] = cursor.fetchone()[0]
        for table in public_tables:
            cursor.execute(
                digest.format(f'public."{table}"') + " WHERE client_id = %s", [client.pk]
            )
            result[f"public.{table}"] = cursor.fetchone()[0]
        for table in schema_tables:
            cursor.execute(digest.format(f'"{client.schema_name}"."{table}"'))
            result[f"{client.schema_name}.{table}"] = cursor.fetchone()[0]
    return result


def call(api, row: Row, client, placeholders: dict):
    url = f"/api/v1/clients/{client.pk}/" + row.path.format(client_id=client.pk, **placeholders)
    url = url.rstrip("/") + (f"?{row.query}" if row.query else "")
    send = getattr(api, row.method.lower())
    return send(url, row.body, format="json") if row.body is not None else send(url)


# --- the isolation tests ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("principal", DENIED)
@pytest.mark.parametrize("row", CLIENT_SCOPED_ENDPOINTS, ids=lambda row: row.id)
def test_another_clients_caller_gets_404_and_changes_nothing(row, principal, tenant_a, tenant_b):
    placeholders = row.setup(tenant_a)
    api = caller(principal, tenant_a, tenant_b)
    before = fingerprint(tenant_a)

    response = call(api, row, tenant_a, placeholders)

    assert response.status_code == 404, response.content
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert tenant_a.slug not in error["message"] and tenant_a.name not in error["message"]
    assert fingerprint(tenant_a) == before


@pytest.mark.django_db
@pytest.mark.parametrize("principal", ALLOWED)
@pytest.mark.parametrize("row", CLIENT_SCOPED_ENDPOINTS, ids=lambda row: row.id)
def test_the_clients_owner_and_staff_succeed(row, principal, tenant_a, tenant_b):
    placeholders = row.setup(tenant_a)
    api = caller(principal, tenant_a, tenant_b)

    response = call(api, row, tenant_a, placeholders)

    assert response.status_code == row.status, response.content


# --- the table covers every route ------------------------------------------------------------


def _methods(callback) -> set[str]:
    if getattr(callback, "actions", None):  # a DRF ViewSet routed by a router
        return {method.upper() for method in callback.actions}
    view_class = callback.view_class
    return {
        method.upper()
        for method in view_class.http_method_names
        if method not in {"options", "head"} and hasattr(view_class, method)
    }


def client_scoped_routes() -> dict[tuple[str, str], type]:
    """(method, path in the table's notation) -> view class, for every client-scoped route."""
    routes = {}
    for route, callback in url_routes():
        if route != CLIENT_PREFIX and not route.startswith(CLIENT_PREFIX + "/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route[len(CLIENT_PREFIX) :].strip("/"))
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        for method in _methods(callback):
            routes[(method, path)] = view_class
    return routes


def test_every_client_scoped_route_is_in_the_table():
    routes = client_scoped_routes()
    listed = {(row.method, row.path) for row in CLIENT_SCOPED_ENDPOINTS}

    missing = sorted(set(routes) - listed)
    assert not missing, (
        "These client-scoped endpoints are not in CLIENT_SCOPED_ENDPOINTS of "
        "tests/test_isolation.py; add a Row for each (see the top of that file):\n"
        + "\n".join(f"  {method} /api/v1/clients/{{client_id}}/{path}" for method, path in missing)
    )
    stale = sorted(listed - set(routes))
    assert not stale, f"Rows for endpoints that no longer exist: {stale}"


def test_every_client_scoped_view_is_a_client_scoped_api_view():
    not_scoped = sorted(
        f"{method} {path}: {view.__module__}.{view.__qualname__}"
        for (method, path), view in client_scoped_routes().items()
        if not (isinstance(view, type) and issubclass(view, ClientScopedAPIView))
    )
    assert not not_scoped, (
        "Views under /api/v1/clients/<client_id>/ must subclass "
        f"tenants.api.base.ClientScopedAPIView, which checks the credential: {not_scoped}"
    )
