"""Fixtures for conversation tests that go through a signed webhook and the fakes."""

from __future__ import annotations

import pytest

from tests.conftest import inside
from tests.conversations.helpers import add_faq_knowledge
from tests.factories import IG_ACCOUNT_ID, ChannelAccountFactory, fixture_bytes, post_webhook
from wafaa import ai_config

WA_URL = "/webhook/whatsapp/test-a/"
IG_URL = "/webhook/instagram/test-a/"


@pytest.fixture
def online(settings, fake_llm):
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = fake_llm.url
    settings.LLM_TIMEOUT = 1.0
    ai_config.reset_clients()
    yield fake_llm
    ai_config.reset_clients()


@pytest.fixture
def wa_shop(tenant_a, fake_graph, settings, eager_tasks):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    settings.REPLY_QUIET_PERIOD_SECONDS = 0
    with inside(tenant_a):
        add_faq_knowledge()
    return ChannelAccountFactory(client=tenant_a)


@pytest.fixture
def ig_shop(tenant_a, fake_graph, settings, eager_tasks):
    settings.SAME_CUSTOMER_SPACING_MS = 0
    settings.REPLY_QUIET_PERIOD_SECONDS = 0
    return ChannelAccountFactory(client=tenant_a, kind="instagram", external_id=IG_ACCOUNT_ID)


@pytest.fixture
def deliver(client, tenant_a, django_capture_on_commit_callbacks):
    """Post a fixture (or bytes) signed; run what was enqueued on commit unless told not to.

    The callbacks run inside the client's schema, as a worker would run the tasks they send
    (and what those tasks enqueue on commit in turn)."""

    def post(body, *, url=WA_URL, run=True):
        body = fixture_bytes(body) if isinstance(body, str) else body
        with django_capture_on_commit_callbacks() as callbacks:
            response = post_webhook(client, url, body)
        assert response.status_code == 200, response.content
        if run:
            with inside(tenant_a), django_capture_on_commit_callbacks(execute=True):
                for callback in callbacks:
                    callback()
        # What the inbox drain stored for this POST (post_webhook drains it in the test).
        drained = response.drained
        return {"accepted": drained.accepted, "duplicates": drained.duplicates}

    return post
