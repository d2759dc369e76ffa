"""/metrics under gunicorn with two workers: our counters aggregated across processes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import uuid

import requests

from tests.factories import post_webhook, wa_text_payload  # noqa: F401 - body helper


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_counter_is_aggregated_across_two_gunicorn_workers(
    live, committed_client, worker_env, tmp_path
):
    from channels_app.providers import sign_body
    from tests.factories import ChannelAccountFactory

    account = ChannelAccountFactory(client=committed_client, external_id=str(uuid.uuid4().int)[:15])
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    broker = worker_env["REDIS_URL"].rsplit("/", 1)[0] + "/5"  # no worker here takes these tasks
    env = {**worker_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "CELERY_BROKER_URL": broker}
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.conf.py",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        cwd=worker_env["PYTHONPATH"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/ready", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        pids = set()
        for n in range(30):
            body = wa_text_payload(
                message_id=f"wamid.M{uuid.uuid4().hex}",
                text="hi",
                phone_id=account.external_id,
                wa_id=f"1555100{n:04d}",
            )
            response = requests.post(
                f"{base}/webhook/whatsapp/{committed_client.slug}/",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "Connection": "close",
                    "X-Hub-Signature-256": sign_body(body, account.app_secret),
                },
                timeout=10,
            )
            assert response.status_code == 200, response.text
        text = requests.get(f"{base}/metrics", timeout=10).text
        pids = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
    finally:
        server.terminate()
        server.wait(20)
        import redis

        redis.Redis.from_url(broker).flushdb()
    match = re.search(
        r'^wafaa_webhook_events_total\{channel="whatsapp",result="stored"\} ([\d.]+)$', text, re.M
    )
    assert match and float(match.group(1)) == 30.0
    assert len(pids) >= 2  # both workers counted, and /metrics summed them
    assert "django_http_requests_total_by_method_total" in text
