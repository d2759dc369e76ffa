"""The demo client `make run` creates (idempotent): a client, an owner, and sample data."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model

from tenants import services
from tenants.models import Client, Membership

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.example"
DEMO_PHONE_NUMBER_ID = "100000000000001"


def demo_ensure() -> list[str]:
    lines = []
    client = Client.objects.filter(slug=DEMO_SLUG).first()
    if client is None:
        client = services.client_create(name="Demo Coffee Shop", slug=DEMO_SLUG)
        lines.append(f"created demo client '{DEMO_SLUG}' (id {client.pk})")
    user_model = get_user_model()
    password = os.environ.get("DEMO_PASSWORD", "demo-password-123")
    user = user_model.objects.filter(email=DEMO_EMAIL).first()
    if user is None:
        user = services.user_create(email=DEMO_EMAIL, password=password, name="Demo Owner")
        Membership.objects.create(user=user, client=client, role=Membership.Role.OWNER)
        lines.append(f"created demo owner {DEMO_EMAIL} / {password}")
    admin = user_model.objects.filter(username="admin").first()
    if admin is None:
        user_model.objects.create_superuser("admin", "admin@wafaa.local", password)
        lines.append(f"created platform admin 'admin' / {password} (http://127.0.0.1:8000/admin/)")
    lines.extend(_demo_channel(client))
    from django_tenants.utils import tenant_context

    from knowledge.demo_data import demo_knowledge_ensure

    with tenant_context(client):
        added = demo_knowledge_ensure(client)
    if added:
        lines.append(f"added demo knowledge ({added} documents)")
    return lines


def _demo_channel(client) -> list[str]:
    """A demo WhatsApp account with random secrets (no real Meta number behind it)."""
    import secrets

    from channels_app.models import ChannelAccount

    if ChannelAccount.objects.filter(client=client).exists():
        return []
    ChannelAccount.objects.create(
        client=client,
        kind=ChannelAccount.Kind.WHATSAPP,
        name="Demo WhatsApp number",
        external_id=DEMO_PHONE_NUMBER_ID,
        display_phone_number="15550000000",
        access_token=secrets.token_urlsafe(32),
        app_secret=secrets.token_urlsafe(32),
    )
    return [
        f"created demo WhatsApp account (phone number id {DEMO_PHONE_NUMBER_ID}); try: "
        '.venv/bin/python manage.py simulate_message --client demo "What are your opening hours?"'
    ]
