"""What the outbound guard and the log masking cost.

    .venv/bin/python bench/outbound.py [--calls 500]

Measures, against a local HTTP receiver on 127.0.0.1 (allowed for this run only through
OUTBOUND_ALLOWED_NETWORKS, as the tests do):

1. `netguard.outbound_url_check` alone (parse, resolve, classify every address);
2. one signed callback delivered through `notifications.deliver` (guard, Standard Webhooks
   signature, a fresh pinned connection each time) next to a bare `requests.post` on a pooled
   session (what callbacks did before: no check, connection reuse);
3. `wafaa.logging.mask_repr` on a typical task-argument repr (paid on every task sent).

Needs no database. Prints the figures and writes bench/results/outbound.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.1/32")
from bench.common import setup_django, summary_ms, write_results


def timed(fn, calls: int) -> list[float]:
    durations = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - started)
    return durations


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    options = parser.parse_args()
    setup_django()

    import requests

    from conversations import notifications
    from tenants.models import new_callback_secret
    from tests.fakes.callback_receiver import CallbackReceiver
    from wafaa import netguard
    from wafaa.logging import mask_repr

    receiver = CallbackReceiver().start()
    client = SimpleNamespace(
        slug="bench", callback_url=receiver.url, callback_secret=new_callback_secret()
    )
    payload = {"event": "customer_message", "conversation_id": 1, "data": {"text": "x" * 200}}
    session = requests.Session()
    try:
        check = timed(lambda: netguard.outbound_url_check(receiver.url), options.calls)
        guarded = timed(
            lambda: notifications.deliver(
                client=client, webhook_id=f"msg_{uuid.uuid4().hex}", payload=payload
            ),
            options.calls,
        )
        bare = timed(
            lambda: session.post(receiver.url, json=payload, timeout=5).close(), options.calls
        )
    finally:
        session.close()
        receiver.stop()
    args = repr(("msg_" + uuid.uuid4().hex, "customer_message", 42, "handoff", {"id": 7}, 1))
    masking = timed(lambda: mask_repr(args), options.calls * 20)

    figures = {
        "url_check": summary_ms(check),
        "callback_through_guard": summary_ms(guarded),
        "bare_pooled_post": summary_ms(bare),
        "mask_repr": summary_ms(masking),
        "received": len(receiver.requests),
    }
    for name, value in figures.items():
        print(f"{name:24} {value}")
    write_results("outbound", {"calls": options.calls, **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
