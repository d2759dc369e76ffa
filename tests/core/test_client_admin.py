"""Platform staff look into one client's data through the per-client admin site."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from conversations import services
from knowledge.models import Document
from tests.conftest import inside
from tests.conversations.helpers import inbound
from tests.factories import ChannelAccountFactory


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user(
        "staff-admin", "staff@wafaa.example", "pw-123456789", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


def test_staff_see_only_the_opened_clients_documents_and_transcripts(
    staff_client, tenant_a, tenant_b
):
    with inside(tenant_a):
        Document.objects.create(
            title="A price list", source="text", checksum="1" * 64, content=b"x", status="ready"
        )
    with inside(tenant_b):
        Document.objects.create(
            title="B secret plan", source="text", checksum="2" * 64, content=b"x", status="ready"
        )
    account = ChannelAccountFactory(client=tenant_a)
    with inside(tenant_a):
        message, _ = services.message_receive(
            account=account, inbound=inbound("Where is my order?")
        )

    response = staff_client.get(f"/admin/client-data/open/{tenant_a.pk}/")
    assert response.status_code == 302
    documents = staff_client.get("/admin/client-data/knowledge/document/").content.decode()
    assert "A price list" in documents and "B secret plan" not in documents
    transcript = staff_client.get(
        f"/admin/client-data/conversations/conversation/{message.conversation_id}/change/"
    ).content.decode()
    assert "Where is my order?" in transcript

    staff_client.get(f"/admin/client-data/open/{tenant_b.pk}/")
    documents = staff_client.get("/admin/client-data/knowledge/document/").content.decode()
    assert "B secret plan" in documents and "A price list" not in documents


def test_the_client_admin_is_for_staff_only(client, tenant_a):
    user = get_user_model().objects.create_user("not-staff", "user@example.com", "pw-123456789")
    client.force_login(user)
    response = client.get(f"/admin/client-data/open/{tenant_a.pk}/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = client.get("/admin/client-data/knowledge/document/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_client_list_in_the_main_admin_links_to_each_clients_data(staff_client, tenant_a):
    page = staff_client.get("/admin/tenants/client/").content.decode()
    assert f"/admin/client-data/open/{tenant_a.pk}/" in page


def test_staff_create_and_suspend_a_client_in_the_admin(staff_client):
    from tenants.models import Client

    form = {
        "name": "Admin Made",
        "slug": "admin-made",
        "status": "active",
        "api_requests_per_minute": 60,
        "messages_per_day": 100,
        "max_documents": 10,
        "max_upload_bytes": 1000000,
        "max_chunks_per_document": 5000,
        "max_chunks": 50000,
        "bot_name": "Bot",
        "persona": "",
        "languages": '["en"]',
        "llm_model": "",
        "handoff_keywords": '["human"]',
        "confidence_threshold": 0.3,
        "fallback_message": "",
        "unsupported_media": "reply",
        "callback_url": "",
        "domains-TOTAL_FORMS": 0,
        "domains-INITIAL_FORMS": 0,
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
        "usage-TOTAL_FORMS": 0,
        "usage-INITIAL_FORMS": 0,
    }
    response = staff_client.post("/admin/tenants/client/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    client = Client.objects.get(slug="admin-made")
    assert client.schema_name == "c_admin_made" and client.messages_per_day == 100
    assert client.domains.filter(is_primary=True).exists()
    response = staff_client.post(
        "/admin/tenants/client/", {"action": "suspend", "_selected_action": [client.pk]}
    )
    assert response.status_code == 302
    client.refresh_from_db()
    assert client.status == "suspended"
