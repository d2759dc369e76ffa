#!/usr/bin/env bash
# `make drill`: installs the Debian packages the drill needs when missing (Prometheus,
# Alertmanager, Caddy: CI-only tools, never needed by `make run` or `make test`), then runs
# scripts/drill.py against the processes it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/debian.sh
. scripts/lib/debian.sh

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
if ((${#missing[@]})); then
    debian_install drill "${missing[@]}"
    # The packages start their own services; the drill runs its own on free ports.
    for service in prometheus prometheus-alertmanager caddy; do
        $DEBIAN_SUDO systemctl stop "$service" >/dev/null 2>&1 || true
        $DEBIAN_SUDO pkill -x "$service" >/dev/null 2>&1 || true
    done
fi
exec "${PYTHON:-python3}" scripts/drill.py
