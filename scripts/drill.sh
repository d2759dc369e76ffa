#!/usr/bin/env bash
# `make drill`: installs the Debian packages the drill needs when missing (Prometheus,
# Alertmanager, Caddy: CI-only tools, never needed by `make run` or `make test`), then runs
# scripts/drill.py against the processes it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "drill: ${missing[*]} missing and apt-get is not available; install them" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "drill: installing ${missing[*]} (Debian packages)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    # The packages start their own services; the drill runs its own on free ports.
    for service in prometheus prometheus-alertmanager caddy; do
        $SUDO systemctl stop "$service" >/dev/null 2>&1 || true
        $SUDO pkill -x "$service" >/dev/null 2>&1 || true
    done
fi
exec "${PYTHON:-python3}" scripts/drill.py
