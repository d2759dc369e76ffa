#!/usr/bin/env bash
# Check the Prometheus side of Wafaa: alert rules (syntax and unit tests), the sample scrape
# config, and every PromQL query of the Grafana dashboard. Run by `make lint` / CI.
#
# Needs promtool; when it is missing, installs Debian's `prometheus` package (apt-get, as root
# or through sudo), which ships it.
set -euo pipefail
cd "$(dirname "$0")/.."

PROM_DIR=deploy/prometheus
DASHBOARD=deploy/grafana/wafaa.json

# shellcheck source=scripts/lib/debian.sh
. scripts/lib/debian.sh
command -v promtool >/dev/null 2>&1 || debian_install check_alerts prometheus
promtool --version | head -n 1

promtool check rules "$PROM_DIR/alerts.yml"
promtool check config "$PROM_DIR/prometheus.yml"
promtool test rules "$PROM_DIR/alerts_test.yml"

# The dashboard's queries, checked as PromQL by promtool (Grafana's $__rate_interval -> 5m).
tmp_dir=$(mktemp -d)
trap 'rm -rf "$tmp_dir"' EXIT
"${PYTHON:-python3}" - "$DASHBOARD" "$tmp_dir/dashboard_rules.yml" <<'PY'
import json
import sys

dashboard = json.load(open(sys.argv[1]))
rules = []
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        expr = target["expr"].replace("$__rate_interval", "5m")
        name = f"dashboard:panel{panel['id']}_{target['refId']}"
        rules.append({"record": name, "expr": expr})
with open(sys.argv[2], "w") as out:
    json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, out)
print(f"dashboard: {len(rules)} queries")
PY
promtool check rules "$tmp_dir/dashboard_rules.yml"

# Every alert's runbook link points at a section of docs/operations.md.
"${PYTHON:-python3}" - "$PROM_DIR/alerts.yml" docs/operations.md <<'PY'
import re
import sys

rules, runbook = (open(path).read() for path in sys.argv[1:3])


def slug(heading: str) -> str:  # GitHub's anchors: lower case, punctuation dropped, - for spaces
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
links = set(re.findall(r"docs/operations\.md#([\w-]+)", rules))
missing = sorted(links - anchors)
if missing:
    sys.exit(f"runbook sections missing in docs/operations.md: {', '.join(missing)}")
print(f"runbook: {len(links)} sections linked from alerts, all present")
PY
echo "check_alerts: OK"
