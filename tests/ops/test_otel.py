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
