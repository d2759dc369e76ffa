"""OpenTelemetry is optional: nothing of it is imported or started unless its endpoint is set.

Each case runs in a fresh interpreter (with Django set up, as in a web or worker process),
so `sys.modules` shows exactly what our code imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROGRAM = """
import json, logging, os, sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if os.environ.get("BLOCK_OPENTELEMETRY"):
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "opentelemetry":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Block())
records = []
logging.getLogger("wafaa.otel").addHandler(
    type("H", (logging.Handler,), {"emit": lambda self, r: records.append(r.getMessage())})()
)
import django
django.setup()
from wafaa.otel import init_otel
started = init_otel()
print(json.dumps({
    "started": started,
    "imported": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"),
    "warnings": records,
}))
"""


def _run(**env) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environ.update(env, PYTHONPATH=python_path, WAFAA_TESTING="1")
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_an_otlp_endpoint_nothing_starts_and_nothing_is_imported():
    result = _run()

    assert result == {"started": False, "imported": [], "warnings": []}


def test_an_empty_otlp_endpoint_counts_as_unset():
    result = _run(OTEL_EXPORTER_OTLP_ENDPOINT="")

    assert result == {"started": False, "imported": [], "warnings": []}


def test_an_endpoint_without_the_optional_packages_warns_and_the_process_carries_on():
    result = _run(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", BLOCK_OPENTELEMETRY="1")

    assert result["started"] is False and result["imported"] == []
    [warning] = result["warnings"]
    assert "requirements-otel.txt" in warning


_TRACED_PROGRAM = """
import json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
django.setup()
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from wafaa.otel import init_otel
exporter = InMemorySpanExporter()
assert init_otel(service_name="wafaa-worker", exporter=exporter)
from django_tenants.utils import tenant_context
from conversations import outbound, pipeline
from conversations.models import Message
from tenants.models import Client
from wafaa import context
slug, message_id, trace_id = sys.argv[1:4]
with context.bound(trace_id=trace_id), tenant_context(Client.objects.get(slug=slug)):
    outcome = pipeline.reply_for_inbound(message_id=int(message_id), send=False)
    reply = Message.objects.filter(direction="out").latest("created_at")
    sent = outbound.message_send(message_id=reply.pk)
print(json.dumps({
    "outcome": outcome,
    "sent": sent,
    "spans": [
        {
            "name": span.name,
            "trace": f"{span.context.trace_id:032x}",
            "id": span.context.span_id,
            "parent": span.parent.span_id if span.parent else None,
            "attributes": {k: str(v) for k, v in span.attributes.items()},
        }
        for span in exporter.get_finished_spans()
    ],
}))
"""


def test_a_message_s_way_is_traced_stage_by_stage_under_its_trace_id(
    live, committed_client, worker_env, fake_graph, fake_llm
):
    """With tracing on (an in-memory exporter in place of OTLP): the stages retrieve, llm and
    send are spans, the OpenAI call (httpx) sits under llm and the Graph call (requests) under
    send, Redis commands are traced without their values, and every span carries the
    message's own trace id."""
    import uuid

    from channels_app.providers import InboundMessage
    from conversations import services
    from tests.conftest import inside
    from tests.conversations.helpers import add_faq_knowledge
    from tests.factories import ChannelAccountFactory

    fake_llm.reply_with("A cappuccino costs 12 SAR.")
    account = ChannelAccountFactory(client=committed_client, external_id=str(uuid.uuid4().int)[:15])
    trace_id = uuid.uuid4().hex
    with inside(committed_client):
        add_faq_knowledge()
        from django.utils import timezone

        message, _ = services.message_receive(
            account=account,
            inbound=InboundMessage(
                channel="whatsapp",
                account_external_id=account.external_id,
                external_id=f"wamid.{uuid.uuid4().hex}",
                contact_key="15550009999",
                wa_id="15550009999",
                type="text",
                text="How much is a cappuccino?",
                timestamp=timezone.now(),
                raw={},
            ),
        )
    environ = {**worker_env, "PYTHONPATH": str(ROOT)}
    environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [sys.executable, "-c", _TRACED_PROGRAM, committed_client.slug, str(message.pk), trace_id],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sent"] == "sent"
    spans = result["spans"]
    by_name: dict[str, list[dict]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    assert {"wafaa.retrieve", "wafaa.llm", "wafaa.send"} <= set(by_name)
    strays = [(s["name"], s["trace"]) for s in spans if s["trace"] != trace_id]
    assert not strays, strays  # one trace id: the message's
    [llm] = by_name["wafaa.llm"]
    [send] = by_name["wafaa.send"]
    assert llm["attributes"]["wafaa.model"]
    http_children = [s for s in spans if s["parent"] == llm["id"]]
    assert any(s["name"].startswith("POST") for s in http_children)  # the OpenAI call (httpx)
    graph_children = [s for s in spans if s["parent"] == send["id"]]
    assert any(s["name"].startswith("POST") for s in graph_children)  # the Graph API send
    redis_spans = [s for s in spans if s["attributes"].get("db.system") == "redis"]
    assert redis_spans
    statements = " ".join(s["attributes"].get("db.statement", "") for s in redis_spans)
    assert committed_client.schema_name not in statements  # arguments are not recorded
    everything = json.dumps(spans)
    assert "cappuccino" not in everything.lower()  # no customer text in any span
