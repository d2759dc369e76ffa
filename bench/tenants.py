"""Many clients: cost of creating one, of migrating all, and API latency as their number grows.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/tenants.py [--clients 1000]
    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/tenants.py --cleanup

Runs on the development database (DATABASE_URL, or .run/services.env from
scripts/devservices.py), in clients of its own (slugs `bench-tn-00001`...), which it drops at the
end (`--keep` leaves them, `--cleanup` only drops them). Measures:

1. seconds per client creation (tenants.services.client_create: row, schema, tenant migrations,
   domain), p50/p95/mean;
2. authenticated API latency (`GET /api/v1/clients/{id}` with a JWT, in-process through the
   whole middleware and DRF stack with Django's test Client) with 10 bench clients present, then
   with all of them;
3. `migrate_schemas` over every schema (nothing to apply: the cost a deploy pays to check each
   client), as a separate process, with the standard and the multiprocessing executor;
4. seconds per client drop.

Prints the figures and writes bench/results/tenants.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, child_env, percentile, setup_django, summary_ms, write_results

SLUG_PREFIX = "bench-tn-"
OWNER_EMAIL = "bench-owner@bench.example"
OWNER_PASSWORD = "bench-password-not-secret-1"
LATENCY_REQUESTS = 300
LATENCY_WARMUP = 30


def bench_clients():
    from tenants.models import Client

    return Client.objects.filter(slug__startswith=SLUG_PREFIX).order_by("slug")


def cleanup() -> list[float]:
    """Drop every bench client (row and schema) and the bench user; seconds per drop."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    durations = []
    for client in bench_clients():
        started = time.perf_counter()
        client.delete(force_drop=True)
        durations.append(time.perf_counter() - started)
    connection.set_schema_to_public()
    get_user_model().objects.filter(email=OWNER_EMAIL).delete()
    return durations


def create_clients(start: int, stop: int, durations: list[float]) -> None:
    from tenants.services import client_create

    for number in range(start, stop):
        slug = f"{SLUG_PREFIX}{number:05d}"
        started = time.perf_counter()
        # A limit no benchmark reaches: the latency runs must not meet 429s.
        client_create(name=f"Bench {number}", slug=slug, api_requests_per_minute=10_000_000)
        durations.append(time.perf_counter() - started)
        done = number + 1
        if done % 100 == 0 or done == stop:
            print(
                f"  {done} clients created ({statistics.fmean(durations[-100:]):.3f} s/client "
                "over the last 100)",
                flush=True,
            )


def owner_token(client) -> str:
    from django.test import Client as HttpClient

    from tenants import services
    from tenants.models import Membership

    user = services.user_create(email=OWNER_EMAIL, password=OWNER_PASSWORD, name="Bench")
    Membership.objects.create(user=user, client=client, role=Membership.Role.OWNER)
    response = HttpClient().post(
        "/api/v1/auth/login",
        {"email": OWNER_EMAIL, "password": OWNER_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


def api_latency(client, token: str) -> dict:
    from django.test import Client as HttpClient

    from tenants.models import Client

    http = HttpClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    url = f"/api/v1/clients/{client.pk}"
    durations = []
    for index in range(LATENCY_WARMUP + LATENCY_REQUESTS):
        started = time.perf_counter()
        response = http.get(url)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content
        if index >= LATENCY_WARMUP:
            durations.append(elapsed)
    return {"clients_present": Client.objects.count(), **summary_ms(durations)}


def migrate_all(executor: str) -> dict:
    from tenants.models import Client

    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "migrate_schemas",
            f"--executor={executor}",
            "--noinput",
            "-v",
            "0",
        ],
        cwd=ROOT,
        env=child_env(),
        check=True,
    )
    seconds = time.perf_counter() - started
    schemas = Client.objects.count() + 1  # and public
    return {
        "executor": executor,
        "schemas": schemas,
        "seconds": round(seconds, 2),
        "ms_per_schema": round(seconds / schemas * 1000, 2),
    }


def seconds_summary(values: list[float]) -> dict:
    return {
        "count": len(values),
        "p50_s": round(percentile(values, 50), 4),
        "p95_s": round(percentile(values, 95), 4),
        "mean_s": round(statistics.fmean(values), 4) if values else None,
        "total_s": round(sum(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="bench clients to create")
    parser.add_argument("--keep", action="store_true", help="leave the bench clients in place")
    parser.add_argument("--cleanup", action="store_true", help="only drop the bench clients")
    options = parser.parse_args()
    if options.clients < 10:
        parser.error("--clients must be at least 10")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    setup_django()
    from django.conf import settings
    from django.db import connection

    # As in production: no per-query debug bookkeeping in the measured requests.
    settings.DEBUG = False

    leftovers = cleanup()
    if leftovers:
        print(f"dropped {len(leftovers)} bench clients left by an earlier run")
    if options.cleanup:
        return

    db = connection.settings_dict
    print(f"database {db['HOST']}:{db['PORT']}/{db['NAME']}, {options.clients} bench clients")
    creation: list[float] = []
    started = time.perf_counter()
    create_clients(0, 10, creation)
    first = bench_clients().first()
    token = owner_token(first)
    latency_few = api_latency(first, token)
    print(
        f"GET /api/v1/clients/{{id}} with {latency_few['clients_present']} clients: "
        f"p50 {latency_few['p50_ms']} ms, p95 {latency_few['p95_ms']} ms"
    )

    create_clients(10, options.clients, creation)
    creation_wall = time.perf_counter() - started
    created = seconds_summary(creation)
    print(
        f"client creation: p50 {created['p50_s']} s, mean {created['mean_s']} s, "
        f"p95 {created['p95_s']} s ({created['count']} clients)"
    )
    latency_many = api_latency(first, token)
    print(
        f"GET /api/v1/clients/{{id}} with {latency_many['clients_present']} clients: "
        f"p50 {latency_many['p50_ms']} ms, p95 {latency_many['p95_ms']} ms"
    )

    migrations = []
    for executor in ("standard", "multiprocessing"):
        result = migrate_all(executor)
        migrations.append(result)
        print(
            f"migrate_schemas --executor={executor}: {result['seconds']} s for "
            f"{result['schemas']} schemas ({result['ms_per_schema']} ms/schema)"
        )

    drops = None
    if not options.keep:
        drops = seconds_summary(cleanup())
        print(f"client drop: p50 {drops['p50_s']} s, mean {drops['mean_s']} s")

    write_results(
        "tenants",
        {
            "setup": {
                "bench_clients": options.clients,
                "api_requests_per_point": LATENCY_REQUESTS,
                "api_client": "django.test.Client, in-process (full middleware + DRF stack)",
                "multiprocessing_processes": getattr(
                    settings, "TENANT_MULTIPROCESSING_MAX_PROCESSES", 2
                ),
                "note": "migrate_schemas with nothing to apply: the per-deploy check of each schema",
            },
            "client_creation": {**created, "wall_s": round(creation_wall, 1)},
            "api_get_client": {"few_clients": latency_few, "many_clients": latency_many},
            "migrate_schemas": migrations,
            "client_drop": drops,
        },
    )


if __name__ == "__main__":
    main()
