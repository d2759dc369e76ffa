"""Fixtures for the inbox (desk) tests: people with roles in the test clients, signed in
through the real login form (so sessions, CSRF and django-axes are the real ones)."""

from __future__ import annotations

import pytest
from django.test import Client as HttpClient

from tenants.models import Membership
from tests.tenants.factories import PASSWORD, MembershipFactory, UserFactory


def sign_in(user, *, enforce_csrf: bool = False) -> HttpClient:
    """A browser-like test client signed in through the login form (CSRF token included)."""
    http = HttpClient(enforce_csrf_checks=enforce_csrf)
    page = http.get("/inbox/login/")
    token = page.cookies["csrftoken"].value
    response = http.post(
        "/inbox/login/",
        {"username": user.email, "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302, response.content
    return http


@pytest.fixture
def member(tenant_a):
    """make(role, client=tenant_a) -> a user with that role."""

    def make(role=Membership.Role.AGENT, client=None):
        user = UserFactory()
        MembershipFactory(user=user, client=client or tenant_a, role=role)
        return user

    return make


@pytest.fixture
def agent(member):
    return member(Membership.Role.AGENT)


@pytest.fixture
def as_agent(agent):
    return sign_in(agent)


@pytest.fixture
def shop(tenant_a, fake_graph, settings):
    """Client A's WhatsApp account (its own WABA id, so no template list is cached for it)."""
    import uuid

    from tests.factories import ChannelAccountFactory

    settings.SAME_CUSTOMER_SPACING_MS = 0
    return ChannelAccountFactory(client=tenant_a, business_account_id=f"waba-{uuid.uuid4().hex}")


def receive(account, text="Hello there", **fields):
    """A customer's message stored as the webhook drain would (inside the client's schema)."""
    from conversations import services
    from conversations.models import Message
    from tests.conversations.helpers import inbound

    message, _ = services.message_receive(account=account, inbound=inbound(text, **fields))
    Message.objects.filter(pk=message.pk).update(status="answered")
    return message


@pytest.fixture
def conversation(tenant_a, shop):
    from conversations.models import Conversation
    from tests.conftest import inside

    with inside(tenant_a):
        message = receive(shop)
        return Conversation.objects.select_related("contact").get(pk=message.conversation_id)
