"""Test set-up: the real PostgreSQL (pgvector) and Redis started by scripts/devservices.py.

Two client schemas (tenant A and B) are created once per test database and reused (--reuse-db);
each test runs in a transaction that is rolled back, including what it writes in a client
schema. Tests that need data committed for another process (a real Celery worker) use the
`committed_client` fixture, which creates a fresh client and drops it afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_SLUGS = {"a": "test-a", "b": "test-b"}


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, django_db_keepdb, django_db_createdb):
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_databases

    from tenants.models import Client
    from tenants.services import client_create

    if not connection.settings_dict["NAME"].startswith("test_"):
        # pytest-django sets up the test database only when a selected test is marked for it
        # (db, django_db); tests reaching it through our session fixtures (worker_env, live)
        # alone would otherwise run against the development database.
        with django_db_blocker.unblock():
            setup_databases(
                verbosity=0,
                interactive=False,
                aliases={"default"},
                keepdb=django_db_keepdb and not django_db_createdb,
            )
    assert connection.settings_dict["NAME"].startswith("test_"), "tests never use the dev database"

    # The tests' own Redis database starts empty: no task or lock left by an earlier run
    # (for a client that no longer exists) may reach this run's worker.
    assert settings.TESTING, "tests must run with the test settings (config.settings_test)"
    from wafaa.redis import get_redis

    get_redis().flushdb()
    with django_db_blocker.unblock():
        from tenants.cloning import template_prepare

        template_prepare()
        for slug in TEST_SLUGS.values():
            if not Client.objects.filter(slug=slug).exists():
                # A test on `live_server` flushes the public tables at the end of a run and
                # leaves the schemas behind; client_create refuses a slug whose schema exists.
                from django.db import connection

                from tenants.models import schema_name_for

                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA IF EXISTS "{schema_name_for(slug)}" CASCADE')
                client_create(name=f"Test {slug}", slug=slug)


@pytest.fixture(autouse=True)
def clean_api_state(redis_client):
    """The client cache and rate-limit counters outlive a test's rolled-back transaction:
    a client cached with one test's settings, or requests counted by earlier tests, must not
    leak into the next test."""
    from channels_app import routing
    from tests.tenants.factories import reset_api_state

    reset_api_state(redis_client)
    _reset_pacing(redis_client)
    routing.forget()  # routes cached from a rolled-back test's accounts must not linger
    yield
    reset_api_state(redis_client)
    _reset_pacing(redis_client)


def _reset_pacing(redis_client):
    # Phone numbers paused (or rate-limited) by one test must not hold back the next one's.
    keys = list(redis_client.scan_iter("wafaa:pace:*", count=1000))
    if keys:
        redis_client.delete(*keys)


@contextmanager
def inside(client):
    from django.db import connection

    connection.set_tenant(client)
    try:
        yield client
    finally:
        connection.set_schema_to_public()


@pytest.fixture
def tenant_a(db):
    from tenants.models import Client

    return Client.objects.get(slug=TEST_SLUGS["a"])


@pytest.fixture
def tenant_b(db):
    from tenants.models import Client

    return Client.objects.get(slug=TEST_SLUGS["b"])


@pytest.fixture
def in_tenant_a(tenant_a):
    with inside(tenant_a):
        yield tenant_a


@pytest.fixture
def in_tenant_b(tenant_b):
    with inside(tenant_b):
        yield tenant_b


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def redis_client():
    from wafaa.redis import get_redis

    return get_redis()


@pytest.fixture
def committed_client(django_db_setup, django_db_blocker):
    """A client whose rows are really committed (visible to a worker process); dropped after."""
    from django.db import connection

    from tenants.models import Client
    from tenants.services import client_create

    with django_db_blocker.unblock():
        client = client_create(name="Committed", slug=f"it-{uuid.uuid4().hex[:10]}")
    yield client
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        Client.objects.get(pk=client.pk).delete(force_drop=True)


def _test_database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="session")
def graph_server():
    from tests.fakes.graph_api import FakeGraphApi

    server = FakeGraphApi().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openai_server():
    from tests.fakes.openai_server import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_graph(graph_server, settings):
    """The fake Graph API, reset, with our sender (in this process) pointed at it."""
    graph_server.reset()
    settings.GRAPH_API_BASE_URL = graph_server.url
    yield graph_server
    graph_server.reset()


@pytest.fixture
def fake_llm(openai_server):
    openai_server.reset()
    yield openai_server
    openai_server.reset()


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in this process when sent (for wiring tests of a task)."""
    from config.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture(scope="session")
def worker_env(django_db_setup, graph_server, openai_server):
    """Environment for processes (workers, gunicorn) that must use the test database and
    talk to the fake Meta and OpenAI servers."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        {
            # The plain settings (settings_test would blank OPENAI_API_KEY), with test values.
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "WAFAA_TESTING": "1",
            "EMBEDDING_BACKEND": "hashing",
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "INFO",
            "CELERY_WORKER_HEARTBEAT_SECONDS": "1",
            "GRAPH_API_BASE_URL": graph_server.url,
            "OPENAI_API_KEY": "test-key-for-the-fake-server",
            "OPENAI_BASE_URL": openai_server.url,
            "LLM_TIMEOUT": "2",
            "LLM_MAX_RETRIES": "2",
            "REPLY_QUIET_PERIOD_SECONDS": "0.6",
            "SAME_CUSTOMER_SPACING_MS": "0",
        }
    )
    return env


class WorkerProcess:
    def __init__(
        self,
        env: dict,
        name: str,
        log_path: Path,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        queues: str = "replies,default,ingest",
    ):
        self.env = env
        self.name = name
        self.log_path = log_path
        self.pool, self.concurrency, self.queues = pool, concurrency, queues
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                self.pool,
                "--concurrency",
                str(self.concurrency),
                "-Q",
                self.queues,
                "-n",
                f"{self.name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, redis, timeout: float = 30):
        from wafaa import heartbeat

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(w.startswith(self.name + "@") for w in heartbeat.live_workers(redis)):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: see {self.log_path}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready in {timeout}s: see {self.log_path}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 20):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class Workers:
    """The Procfile's layout in small: a `replies` worker (threads, pooled database
    connections) and one prefork worker for `default` and `ingest`."""

    def __init__(self, replies: WorkerProcess, rest: WorkerProcess):
        self.replies, self.rest = replies, rest

    def output(self) -> str:
        return self.replies.output() + self.rest.output()

    @property
    def name(self) -> str:
        """The `replies` worker's name (tests that look for one live worker's heartbeat)."""
        return self.replies.name

    @property
    def proc(self):
        """The process of the worker that runs ingestion (tests that watch that worker)."""
        return self.rest.proc

    def stop(self, sig=signal.SIGTERM, timeout: float = 20):
        self.replies.stop(sig, timeout)
        self.rest.stop(sig, timeout)


def start_workers(env: dict, directory: Path, redis) -> Workers:
    tag = uuid.uuid4().hex[:6]
    replies = WorkerProcess(
        {**env, "DB_POOL_MAX_SIZE": "4"},
        f"test-replies-{tag}",
        directory / "replies.log",
        pool="threads",
        concurrency=20,
        queues="replies",
    ).start()
    rest = WorkerProcess(
        env, f"test-rest-{tag}", directory / "rest.log", concurrency=1, queues="default,ingest"
    ).start()
    replies.wait_ready(redis)
    rest.wait_ready(redis)
    return Workers(replies, rest)


@pytest.fixture(scope="session")
def celery_worker_process(worker_env, tmp_path_factory, django_db_blocker):
    """Real Celery workers (separate processes) on the test database and the real broker."""
    from wafaa.redis import get_redis

    workers = start_workers(worker_env, tmp_path_factory.mktemp("worker"), get_redis())
    try:
        yield workers
    finally:
        workers.stop()


@pytest.fixture
def live(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def shop(live, committed_client, celery_worker_process, fake_graph, fake_llm):
    """A committed client with a WhatsApp account and FAQ knowledge, a live worker, fakes."""
    from tests.conversations.helpers import add_faq_knowledge
    from tests.factories import ChannelAccountFactory, post_webhook, wa_text_payload

    phone_id = str(uuid.uuid4().int)[:15]
    account = ChannelAccountFactory(client=committed_client, external_id=phone_id)
    with inside(committed_client):
        add_faq_knowledge()

    class Shop:
        client = committed_client
        url = f"/webhook/whatsapp/{committed_client.slug}/"

        def __init__(self):
            self.account = account

        def send(self, http, text, message_id=None):
            body = wa_text_payload(
                message_id=message_id or f"wamid.{uuid.uuid4().hex}", text=text, phone_id=phone_id
            )
            response = post_webhook(http, self.url, body)
            assert response.status_code == 200, response.content
            return body

        def messages(self, **filters):
            from conversations.models import Message

            with inside(committed_client):
                return list(Message.objects.filter(**filters).order_by("created_at", "pk"))

        def wait_until(self, predicate, timeout=15.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if predicate():
                    return
                time.sleep(0.05)
            raise AssertionError("condition not met in time")

    return Shop()
