"""A real `make run`-like Wafaa for the browser tests and the inbox screenshots.

What runs, all on 127.0.0.1, all stopped by `Harness.stop()`:
- an embedded PostgreSQL and Valkey of the harness's own (scripts/devservices.py with
  WAFAA_RUN_DIR=.run/browser: never the developer's `.run/` database), in its fast settings;
- the fake Graph API (tests/fakes/graph_api.py) as a real HTTP server in this process; the
  app's GRAPH_API_BASE_URL points at it, so every send of every client lands there;
- web (gunicorn with config/gunicorn.conf.py, 2 sync workers) and one Celery worker on the
  replies, default and ingest queues, run by `make run`'s supervisor (scripts/supervise.py)
  from a Procfile of the harness (.run/browser/Procfile, log in .run/browser/stack.log);
- two clients, A and B (fresh each run), each with a WhatsApp account whose app secret signs
  the webhooks, an owner and an agent (created with the ORM services, as the API does).

This process is set up as a Django process of the same database (Django's `config.settings`),
so the tests can read what the app stored (an outbound message's Meta id, for a status
webhook) through the ORM.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run" / "browser"
PASSWORD = "browser-Test-pass-8071"  # a test fixture's password, for users made here only
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # Debian's package
# Headless, and nothing that would reach out to Google's services (the network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# The processes' settings: development defaults, with short timers so a reply goes out at once.
STACK_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "EMBEDDING_BACKEND": "hashing",  # no model download; the extractive answerer offline
    "OPENAI_API_KEY": "",
    "LOG_LEVEL": "WARNING",
    "REPLY_QUIET_PERIOD_SECONDS": "0.2",
    "SAME_CUSTOMER_SPACING_MS": "0",
    "WEB_CONCURRENCY": "2",
    "CELERY_WORKER_HEARTBEAT_SECONDS": "1",
    "GRAPH_API_READ_TIMEOUT": "5",
}


@dataclass
class Tenant:
    """A client of the harness: its slug, WhatsApp account and people."""

    slug: str
    name: str
    phone_number_id: str
    app_secret: str
    owner_email: str
    agent_email: str
    client_id: int = 0


def launch_chromium(playwright):
    """Debian's Chromium through Playwright (never a browser Playwright downloads)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def devservices(command: str) -> dict:
    """scripts/devservices.py in the harness's own directory. DATABASE_URL/REDIS_URL of the
    caller's environment are dropped: the harness never uses a database it was handed."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["WAFAA_RUN_DIR"] = str(RUN_DIR)
    args = [sys.executable, str(ROOT / "scripts" / "devservices.py"), *command.split()]
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"devservices {command}: {result.stderr.strip()}")
    return dict(
        line.split("=", 1) for line in result.stdout.splitlines() if re.match(r"^[A-Z_]+=", line)
    )


class Harness:
    def __init__(self):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.run = uuid.uuid4().hex[:6]  # customers' numbers and message ids unique per run
        self.tenants = {
            "a": Tenant(
                "browser-a",
                "Client A",
                "990000000000101",
                "browser-a-app-secret-0123456789",
                "owner@a.browser.test",
                "agent@a.browser.test",
            ),
            "b": Tenant(
                "browser-b",
                "Client B",
                "990000000000202",
                "browser-b-app-secret-0123456789",
                "owner@b.browser.test",
                "agent@b.browser.test",
            ),
        }
        self.graph = None
        self.proc: subprocess.Popen | None = None
        self.log_path = RUN_DIR / "stack.log"
        self._log = None
        self.started_in = 0.0
        self.timings: dict[str, float] = {}  # seconds since start() began, by phase

    # -- life cycle --

    def start(self) -> Harness:
        began = time.monotonic()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        try:
            urls = devservices("start --fast")
            self.timings["services"] = time.monotonic() - began
            from tests.fakes.graph_api import FakeGraphApi

            self.graph = FakeGraphApi().start()
            self.env = {
                **os.environ,
                **STACK_ENV,
                **urls,
                "PYTHONPATH": str(ROOT),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "GRAPH_API_BASE_URL": self.graph.url,
            }
            for name in (
                "PROMETHEUS_MULTIPROC_DIR",
                "CELERY_BROKER_KEYPREFIX",
                "WAFAA_TESTING",
                "DJANGO_ALLOW_ASYNC_UNSAFE",
            ):
                self.env.pop(name, None)
            # This process reads and writes the same database through the ORM.
            os.environ.update({k: v for k, v in self.env.items() if k != "PATH"})
            subprocess.run(
                [sys.executable, "manage.py", "bootstrap"],
                cwd=ROOT,
                env=self.env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            self.timings["bootstrap"] = time.monotonic() - began
            import django

            django.setup()
            from wafaa.redis import get_redis

            get_redis().flushall()  # no task, login failure count or pause of an earlier run
            for tenant in self.tenants.values():
                self._prepare(tenant)
            self.timings["clients"] = time.monotonic() - began
            self._start_stack()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _start_stack(self) -> None:
        procfile = RUN_DIR / "Procfile"
        procfile.write_text(
            "web: gunicorn -c config/gunicorn.conf.py config.wsgi:application "
            f"--bind 127.0.0.1:{self.port}\n"
            "worker: celery -A config worker --loglevel WARNING --pool threads --concurrency 8 "
            "-Q replies,default,ingest -n browser@%h --without-gossip --without-mingle\n"
        )
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "supervise.py"), str(procfile)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        from wafaa import heartbeat
        from wafaa.redis import get_redis

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the supervisor exited; see {self.log_path}")
            try:
                web = requests.get(f"{self.base_url}/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False
            return web and any(
                w.startswith("browser@") for w in heartbeat.live_workers(get_redis())
            )

        wait_until(ready, 90, f"web and worker ready (log: {self.log_path})", every=0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the supervisor stops web and worker
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.graph is not None:
            self.graph.stop()
            self.graph = None
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        devservices("stop")

    # -- data --

    def _prepare(self, tenant: Tenant) -> None:
        """A fresh client (its schema dropped and made again), its account and people."""
        from django.contrib.auth import get_user_model

        from channels_app.models import ChannelAccount
        from tenants.models import Client, Membership
        from tenants.services import client_create, user_create

        User = get_user_model()  # noqa: N806 - the model class

        old = Client.objects.filter(slug=tenant.slug).first()
        if old is not None:
            ChannelAccount.objects.filter(client=old).delete()
            old.delete(force_drop=True)
        User.objects.filter(email__in=[tenant.owner_email, tenant.agent_email]).delete()
        client = client_create(name=tenant.name, slug=tenant.slug)
        tenant.client_id = client.pk
        ChannelAccount.objects.create(
            client=client,
            kind="whatsapp",
            external_id=tenant.phone_number_id,
            display_phone_number="15550001111",
            access_token=f"EAAbrowser{tenant.slug}",
            app_secret=tenant.app_secret,
            verify_token=f"verify-{tenant.slug}",
        )
        for email, role in (
            (tenant.owner_email, Membership.Role.OWNER),
            (tenant.agent_email, Membership.Role.AGENT),
        ):
            user = user_create(email=email, password=PASSWORD, name=email.split("@")[0].title())
            Membership.objects.create(user=user, client=client, role=role)

    def customer(self, n: int = 0) -> str:
        """A customer's WhatsApp number, unique to this run."""
        return f"2010{int(self.run, 16) % 10_000_000:07d}{n:02d}"

    # -- webhooks, as Meta sends them --

    def _post(self, tenant: Tenant, body: bytes) -> None:
        from channels_app.providers import sign_body

        response = requests.post(
            f"{self.base_url}/webhook/whatsapp/{tenant.slug}/",
            data=body,
            timeout=10,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign_body(body, tenant.app_secret),
            },
        )
        assert response.status_code == 200, (response.status_code, response.text[:300])

    def send_text(self, tenant: Tenant, *, wa_id: str, text: str, name: str = "Customer") -> str:
        """A customer's signed text message; returns its Meta message id."""
        from conversations.management.commands.simulate_message import webhook_body

        message_id = f"wamid.BROWSER{uuid.uuid4().hex}"
        body = webhook_body(
            phone_number_id=tenant.phone_number_id,
            wa_id=wa_id,
            name=name,
            message_id=message_id,
            text=text,
        )
        self._post(tenant, body)
        return message_id

    def send_status(self, tenant: Tenant, *, message_id: str, status: str, recipient: str) -> None:
        """Meta's signed status (sent, delivered, read, failed) of one of our messages."""
        from conversations.management.commands.simulate_message import status_webhook_body

        body = status_webhook_body(
            phone_number_id=tenant.phone_number_id,
            message_id=message_id,
            status=status,
            recipient=recipient,
        )
        self._post(tenant, body)

    # -- what the app stored --

    def conversation_of(self, tenant: Tenant, wa_id: str, timeout: float = 20):
        """The conversation of a customer, once the worker has stored it."""
        from django_tenants.utils import tenant_context

        from conversations.models import Conversation
        from tenants.models import Client

        client = Client.objects.get(pk=tenant.client_id)

        def find():
            with tenant_context(client):
                return Conversation.objects.filter(contact__external_id=wa_id).first()

        return wait_until(find, timeout, f"the conversation of {wa_id}")

    def message(self, tenant: Tenant, message_id: int):
        from django_tenants.utils import tenant_context

        from conversations.models import Message
        from tenants.models import Client

        with tenant_context(Client.objects.get(pk=tenant.client_id)):
            return Message.objects.select_related("conversation").get(pk=message_id)

    def conversation(self, tenant: Tenant, conversation_id: int):
        from django_tenants.utils import tenant_context

        from conversations.models import Conversation
        from tenants.models import Client

        with tenant_context(Client.objects.get(pk=tenant.client_id)):
            return Conversation.objects.get(pk=conversation_id)

    def conversation_ids(self, tenant: Tenant) -> set[int]:
        from django_tenants.utils import tenant_context

        from conversations.models import Conversation
        from tenants.models import Client

        with tenant_context(Client.objects.get(pk=tenant.client_id)):
            return set(Conversation.objects.values_list("pk", flat=True))
