"""Hardening (issue 10, finding 13): what the pages and the web server give a stranger.

- Every response carries a Content-Security-Policy; the admin and the API docs still work
  under it (no inline script, every script from us).
- The API docs page serves its own assets (drf-spectacular-sidecar): no CDN URL in the page.
- Too long a URL is a JSON 414 from the app; gunicorn answers request lines over its own limit
  itself (plain text: the app never sees them). A query cancelled by the web statement timeout
  is a JSON 503.
- gunicorn opens no control socket at a shared path: two instances on one machine coexist.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import OperationalError, connection
from django.test import RequestFactory

from scripts.devservices import _free_port
from tests.core.test_deploy_check import _manage
from wafaa import context
from wafaa.api.exceptions import exception_handler
from wafaa.middleware import RequestLimitsMiddleware

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_SRC = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


def csp_of(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {
        part.strip().split(" ", 1)[0]: part.strip().split(" ", 1)[1]
        for part in header.split(";")
        if " " in part.strip()
    }


def assert_scripts_only_from_us(html: str) -> list[str]:
    sources = []
    for attributes, body in SCRIPT_SRC.findall(html):
        match = re.search(r'src="([^"]+)"', attributes)
        # script-src 'self' blocks inline code: every script must be a file of ours.
        assert match and not body.strip(), f"inline script: {body[:80]!r}"
        assert match.group(1).startswith("/"), match.group(1)
        sources.append(match.group(1))
    return sources


def test_every_response_has_a_content_security_policy(client):
    for path in ("/api/v1/auth/me", "/admin/login/", "/api/docs/"):
        policy = csp_of(client.get(path))
        assert policy["script-src"] == "'self'"
        assert policy["object-src"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"


def test_the_api_docs_page_works_under_the_policy_with_its_own_assets(client):
    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I), "a CDN URL"
    assert "jsdelivr" not in html and "unpkg" not in html and "cdnjs" not in html
    scripts = assert_scripts_only_from_us(html)
    styles = re.findall(r'<link[^>]+href="([^"]+)"', html)
    assert any("swagger-ui-bundle" in src for src in scripts)
    for url in scripts + styles:
        asset = client.get(url)
        assert asset.status_code == 200, url
        body = b"".join(asset.streaming_content) if asset.streaming else asset.content
        assert body
    # The start-up script (the split view's) points Swagger UI at our schema.
    init = next(url for url in scripts if "script=" in url)
    started = client.get(init).content.decode()
    assert "/api/schema/" in started
    # Nothing is sent elsewhere: Swagger UI's validator badge (validator.swagger.io) is off.
    assert '"validatorUrl": null' in started
    assert client.get("/api/schema/").status_code == 200


def test_the_admin_login_page_works_under_the_policy(client):
    page = client.get("/admin/login/")

    assert page.status_code == 200
    assert 'name="password"' in page.content.decode()
    for url in assert_scripts_only_from_us(page.content.decode()):
        assert client.get(url).status_code == 200
    assert "'self'" in csp_of(page)["form-action"]


def test_too_long_a_url_is_a_json_414_from_the_app(client, settings):
    response = client.get("/api/v1/clients?q=" + "a" * settings.MAX_URL_LENGTH)

    assert response.status_code == 414
    error = response.json()["error"]
    assert error["code"] == "uri_too_long"
    assert error["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_a_query_cancelled_by_the_statement_timeout_is_a_json_503():
    """A real cancellation from PostgreSQL, answered by both the API's exception handler and
    the middleware (non-DRF views such as webhooks)."""
    with pytest.raises(OperationalError) as raised, connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 50")
        cursor.execute("SELECT pg_sleep(2)")

    with context.bound(request_id="req-timeout-1", trace_id="req-timeout-1"):
        for response in (
            exception_handler(raised.value, {}),
            RequestLimitsMiddleware(lambda r: None).process_exception(
                RequestFactory().get("/webhook/whatsapp/"), raised.value
            ),
        ):
            assert response.status_code == 503
            assert response["Retry-After"] == "5"
            body = json.loads(response.content)
            assert body["error"]["code"] == "timeout"
            assert body["error"]["request_id"] == "req-timeout-1"


def test_the_statement_timeout_setting_reaches_postgresql():
    result = _manage(
        "shell",
        "-c",
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('SHOW statement_timeout'); print(c.fetchone()[0])",
        DB_STATEMENT_TIMEOUT_MS="1234",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "1234ms"


# --- a real gunicorn ---------------------------------------------------------------------------


def start_gunicorn(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    handle = open(log, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.conf.py",
            "config.wsgi:application",
        ],
        cwd=ROOT,
        env={**env, "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1"},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            try:
                # The first request loads Django in the worker: slow on a busy machine.
                requests.get(url + "/api/nowhere", timeout=30)
                return process, url
            except (requests.ConnectionError, requests.Timeout):
                assert process.poll() is None, log.read_text()
                time.sleep(0.3)
        raise AssertionError(f"gunicorn did not start: {log.read_text()}")
    except BaseException:
        stop(process)  # never leave a server behind a failed start
        raise


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


def test_two_gunicorns_on_one_machine_share_no_control_socket_and_answer_long_urls(
    worker_env, tmp_path
):
    runtime = tmp_path / "xdg"
    runtime.mkdir()
    base = {**worker_env, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path)}
    base.pop("WEB_CONTROL_SOCKET", None)
    own_socket = tmp_path / "b.ctl"
    first, first_url = start_gunicorn(base, tmp_path / "a.log")
    try:
        second, second_url = start_gunicorn(
            {**base, "WEB_CONTROL_SOCKET": str(own_socket)}, tmp_path / "b.log"
        )
        try:
            for url in (first_url, second_url):
                answer = requests.get(url + "/api/nowhere", timeout=5)
                assert answer.status_code == 404
                assert answer.json()["error"]["code"] == "not_found"
            # No socket at the shared default path; the second instance has its own.
            assert list(runtime.iterdir()) == []
            assert not (tmp_path / ".gunicorn").exists()
            assert own_socket.exists()

            app_414 = requests.get(first_url + "/api/v1/clients?q=" + "a" * 5000, timeout=5)
            assert app_414.status_code == 414
            assert app_414.json()["error"]["code"] == "uri_too_long"
            # Over gunicorn's limit_request_line (8190) gunicorn answers alone, not in JSON.
            server_414 = requests.get(first_url + "/api/v1/clients?q=" + "a" * 9000, timeout=5)
            assert server_414.status_code == 414
            assert "application/json" not in server_414.headers.get("Content-Type", "")
        finally:
            stop(second)
    finally:
        stop(first)
