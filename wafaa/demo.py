"""The demo client `make run` creates (idempotent): a client, an owner, and sample data."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model

from tenants import services
from tenants.models import Client, Membership

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.example"


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
    return lines
