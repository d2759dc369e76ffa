"""The error envelope for every kind of failure, body limits, and per-client rate limits."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection

from tenants import services
from tenants.models import APIKey
from tests.tenants.factories import api_key_for, api_with_key
from wafaa.errors import RateLimitedError
from wafaa.ratelimit import check_rate_limit

pytestmark = pytest.mark.django_db


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    return error


# --- validation and request bodies -----------------------------------------------------------


def test_a_400_lists_every_invalid_field(api):
    response = api.post(
        "/api/v1/auth/register", {"email": "not-an-email", "password": "short"}, format="json"
    )

    error = assert_envelope(response, 400, "validation_error")
    assert set(error["details"]) == {"email", "password", "client_name", "client_slug"}
    assert all(isinstance(messages, list) and messages for messages in error["details"].values())
    assert error["message"] == "Invalid input in: client_name, client_slug, email, password."


def test_unknown_fields_are_a_400_naming_them(as_owner_a, tenant_a):
    response = as_owner_a.patch(
        f"/api/v1/clients/{tenant_a.pk}", {"bot_name": "Nour", "botname": "typo"}, format="json"
    )

    error = assert_envelope(response, 400, "validation_error")
    assert error["details"] == {"botname": ["Unknown field."]}


def test_a_body_that_is_not_a_json_object_is_400(as_owner_a, tenant_a):
    response = as_owner_a.post(
        f"/api/v1/clients/{tenant_a.pk}/api-keys", data=["a", "list"], format="json"
    )

    assert_envelope(response, 400, "validation_error")
    assert not APIKey.objects.filter(client=tenant_a).exists()


def test_malformed_json_is_400(as_owner_a, tenant_a):
    response = as_owner_a.generic(
        "POST",
        f"/api/v1/clients/{tenant_a.pk}/api-keys",
        b'{"name": "unterminated',
        content_type="application/json",
    )

    error = assert_envelope(response, 400, "malformed_request")
    assert "JSON" in error["message"]
    assert not APIKey.objects.filter(client=tenant_a).exists()


def test_a_body_in_another_format_is_415(as_owner_a, tenant_a):
    response = as_owner_a.generic(
        "POST", f"/api/v1/clients/{tenant_a.pk}/api-keys", b"name=x", content_type="text/plain"
    )

    assert_envelope(response, 415, "unsupported_media_type")


def test_a_body_over_the_upload_limit_is_413(api, settings):
    body = json.dumps({"email": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}).encode()

    response = api.generic("POST", "/api/v1/auth/login", body, content_type="application/json")

    error = assert_envelope(response, 413, "payload_too_large")
    assert "larger" in error["message"]


# --- routing ---------------------------------------------------------------------------------


def test_an_unknown_url_under_the_api_is_a_404_envelope(api):
    response = api.get("/api/v1/no-such-thing")

    error = assert_envelope(response, 404, "not_found")
    assert "/api/v1/no-such-thing" in error["message"]


def test_an_unknown_client_is_a_404_envelope(as_staff):
    assert_envelope(as_staff.get("/api/v1/clients/987654321"), 404, "not_found")
    # Larger than any database integer: still a 404, not a database error.
    assert_envelope(as_staff.get("/api/v1/clients/99999999999999999999999"), 404, "not_found")


def test_a_wrong_method_is_a_405_envelope(api, as_owner_a, tenant_a):
    error = assert_envelope(api.get("/api/v1/auth/login"), 405, "method_not_allowed")
    assert "GET" in error["message"]

    assert_envelope(as_owner_a.delete(f"/api/v1/clients/{tenant_a.pk}"), 405, "method_not_allowed")


def test_the_callers_request_id_is_kept_in_the_envelope(api):
    response = api.get("/api/v1/auth/me", HTTP_X_REQUEST_ID="support-ticket-4242")

    assert assert_envelope(response, 401, "not_authenticated")["request_id"] == (
        "support-ticket-4242"
    )


# --- unexpected errors -----------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_a_500_envelope_without_a_traceback(
    as_owner_a, tenant_a, settings, caplog, debug
):
    settings.DEBUG = debug
    # A real failure, not a patched one: the table the endpoint reads is missing, as after a
    # botched migration. DDL is transactional, so the test's rollback puts it back.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE public.tenants_apikey RENAME TO tenants_apikey_gone")

    response = as_owner_a.get(f"/api/v1/clients/{tenant_a.pk}/api-keys")

    error = assert_envelope(response, 500, "server_error")
    assert error["details"] == {}
    assert "request id" in error["message"]
    text = response.content.decode()
    for leak in ("Traceback", "tenants_apikey", "relation", "ProgrammingError", ".py"):
        assert leak not in text
    # The traceback goes to the log instead, under the same request id.
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error in API view"]
    assert logged and logged[0].exc_info is not None
    assert logged[0].request_id == error["request_id"]


# --- rate limits -----------------------------------------------------------------------------


def wait_for_a_fresh_window(seconds_needed: float = 5) -> None:
    """Start the test early enough in a minute that its requests share one window."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        time.sleep(left + 0.05)


def window_key(client) -> str:
    return f"wafaa:ratelimit:api:{client.pk}:{int(time.time() // 60)}"


def test_over_the_plan_limit_is_429_with_retry_after_then_it_recovers(
    as_owner_a, tenant_a, tenant_b, redis_client
):
    services.client_update(client=tenant_a, data={"api_requests_per_minute": 3}, by_staff=True)
    _, key_b = api_key_for(tenant_b)
    url = f"/api/v1/clients/{tenant_a.pk}/api-keys"
    wait_for_a_fresh_window()

    assert [as_owner_a.get(url).status_code for _ in range(3)] == [200, 200, 200]
    limited = as_owner_a.post(url, {"name": "over the limit"}, format="json")

    error = assert_envelope(limited, 429, "rate_limited")
    assert error["details"] == {"limit": 3, "window_seconds": 60}
    assert "3 API requests per minute" in error["message"]
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert not APIKey.objects.filter(client=tenant_a).exists()  # refused before it ran
    # Another client's budget is its own.
    assert api_with_key(key_b).get(f"/api/v1/clients/{tenant_b.pk}").status_code == 200

    # The window's counter expires by itself (TTL); deleting it is the next window starting.
    key = window_key(tenant_a)
    assert int(redis_client.get(key)) == 4
    assert 0 < redis_client.ttl(key) <= 61
    redis_client.delete(key)
    assert as_owner_a.get(url).status_code == 200


def test_the_counter_starts_again_in_the_next_window(tenant_a, redis_client):
    start = (int(time.time() // 60) + 10) * 60  # a window of its own, ten minutes ahead

    for second in (0, 10, 20):
        check_rate_limit(client_id=tenant_a.pk, limit=3, now=start + second)
    with pytest.raises(RateLimitedError) as caught:
        check_rate_limit(client_id=tenant_a.pk, limit=3, now=start + 45)
    assert caught.value.retry_after == 15

    check_rate_limit(client_id=tenant_a.pk, limit=3, now=start + 60)  # next minute: allowed
    redis_client.delete(
        f"wafaa:ratelimit:api:{tenant_a.pk}:{start // 60}",
        f"wafaa:ratelimit:api:{tenant_a.pk}:{start // 60 + 1}",
    )
