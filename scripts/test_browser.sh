#!/usr/bin/env bash
# `make test-browser`: the browser tests (tests_browser/) in headless Chromium, through a real
# server (tests_browser/harness.py). `make screenshots` runs the same set-up with --screenshots
# and writes docs/screenshots/inbox-*.png.
#
# Needs Debian's chromium package: when /usr/bin/chromium is missing, installs it (apt-get, as
# root or through sudo), like scripts/check_alerts.sh installs promtool. Playwright drives it
# through executable_path; Playwright's own browser downloads are never used. The Python
# package comes from requirements-browser.txt (the Makefile installs it into the venv).
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "test_browser: $CHROMIUM is missing and apt-get is not available;" \
            "install Chromium and run again (or set CHROMIUM=/path/to/chromium)" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "test_browser: installing Chromium (Debian package chromium)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium >/dev/null
fi
export CHROMIUM

PYTHON=${PYTHON:-python3}
if [ "${1:-}" = "--screenshots" ]; then
    exec "$PYTHON" -m tests_browser.screenshots
fi
# pytest-django is off (-p no:django): the harness sets Django up itself, against its own
# database, so the project's pytest options that belong to pytest-django are replaced too.
exec "$PYTHON" -m pytest -p no:django -o addopts="" -W "ignore:Unknown config option" \
    -q -p no:cacheprovider --strict-markers tests_browser "$@"
