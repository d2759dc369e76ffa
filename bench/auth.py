"""What the account defences cost: logins through django-axes, and sign-up in two steps.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/auth.py [--logins 200]

Runs in-process (Django's test Client through the whole middleware and DRF stack) on the
development services, with users and clients of its own (`bench-auth-...`) that it removes at
the end. Each caller has its own address (REMOTE_ADDR), so the throttle never gets in the way
of the measurements that are not about it. Measures:

1. `POST /api/v1/auth/login`: a right password, a wrong one (counted in Redis by axes), and a
   refusal while locked out (answered before any password hash is computed);
2. sign-up: `POST /auth/register` (a pending row and an email; no schema any more) and
   `POST /auth/verify-email` (user, client and its schema), p50/p95.

Prints the figures and writes bench/results/auth.json.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import setup_django, summary_ms, write_results

PASSWORD = "bench-password-not-secret-1"
PREFIX = "bench-auth-"


JSON = "application/json"


def timed(post, path: str, body: dict) -> tuple[float, object]:
    started = time.perf_counter()
    response = post(path, body, content_type=JSON)
    return time.perf_counter() - started, response


def login_figures(count: int) -> dict:
    from django.test import Client as HttpClient

    from tenants import services

    email = f"{PREFIX}{uuid.uuid4().hex[:8]}@bench.example"
    services.user_create(email=email, password=PASSWORD, name="Bench")
    right, wrong, locked = [], [], []
    for n in range(count):
        http = HttpClient(REMOTE_ADDR=f"10.77.{n // 250}.{n % 250 + 1}")
        elapsed, response = timed(
            http.post, "/api/v1/auth/login", {"email": email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.content
        right.append(elapsed)
        elapsed, response = timed(
            http.post, "/api/v1/auth/login", {"email": email, "password": "wrong-one"}
        )
        assert response.status_code == 401, response.content
        wrong.append(elapsed)
    attacker = HttpClient(REMOTE_ADDR="10.78.0.1")
    for _ in range(50):
        attacker.post(
            "/api/v1/auth/login",
            {"email": email, "password": "guess"},
            content_type=JSON,
        )
    for _ in range(count):
        elapsed, response = timed(
            attacker.post, "/api/v1/auth/login", {"email": email, "password": PASSWORD}
        )
        assert response.status_code == 429, response.content
        locked.append(elapsed)
    return {
        "login_right_password": summary_ms(right),
        "login_wrong_password": summary_ms(wrong),
        "login_refused_while_locked": summary_ms(locked),
    }


def signup_figures(count: int) -> dict:
    from django.core import mail
    from django.test import Client as HttpClient
    from django.test.utils import override_settings

    register, verify = [], []
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        for n in range(count):
            suffix = uuid.uuid4().hex[:8]
            http = HttpClient(REMOTE_ADDR=f"10.79.{n // 250}.{n % 250 + 1}")
            body = {
                "email": f"{PREFIX}{suffix}@bench.example",
                "password": "a-long-unusual-passphrase",
                "client_name": f"Bench auth {suffix}",
                "client_slug": f"{PREFIX}{suffix}",
            }
            elapsed, response = timed(http.post, "/api/v1/auth/register", body)
            assert response.status_code == 202, response.content
            register.append(elapsed)
            token = re.search(r"token=([A-Za-z0-9_\-]+)", mail.outbox[-1].body).group(1)
            elapsed, response = timed(http.post, "/api/v1/auth/verify-email", {"token": token})
            assert response.status_code == 201, response.content
            verify.append(elapsed)
    return {"signup_register": summary_ms(register), "signup_verify": summary_ms(verify)}


def cleanup() -> int:
    from django.contrib.auth import get_user_model

    from tenants.models import Client, SignUp
    from wafaa.redis import get_redis

    clients = list(Client.objects.filter(slug__startswith=PREFIX))
    for client in clients:
        client.delete(force_drop=True)
    get_user_model().objects.filter(email__startswith=PREFIX).delete()
    SignUp.objects.filter(email__startswith=PREFIX).delete()
    redis = get_redis()
    for pattern in ("*axes-*", "*throttle_signup_*"):
        keys = list(redis.scan_iter(pattern))
        if keys:
            redis.delete(*keys)
    return len(clients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--signups", type=int, default=20)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    cleanup()
    try:
        figures = {**login_figures(args.logins), **signup_figures(args.signups)}
    finally:
        cleanup()
    for name, summary in figures.items():
        print(f"{name:30s} p50 {summary['p50_ms']:8.2f} ms   p95 {summary['p95_ms']:8.2f} ms")
    write_results(
        "auth",
        {
            "password_hasher": settings.PASSWORD_HASHERS[0],
            "login_limits": {
                "per_account_and_ip": settings.LOGIN_FAILURES_PER_ACCOUNT_AND_IP,
                "per_ip": settings.LOGIN_FAILURES_PER_IP,
                "lockout_minutes": settings.LOGIN_LOCKOUT_MINUTES,
            },
            **figures,
        },
    )


if __name__ == "__main__":
    main()
