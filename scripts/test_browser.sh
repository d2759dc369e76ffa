#!/usr/bin/env bash
# `make test-browser`: the browser tests (tests_browser/) in headless Chromium, through a real
# server (tests_browser/harness.py). `make screenshots` runs the same set-up with --screenshots
# and writes docs/screenshots/inbox-*.png.
#
# Needs Debian's chromium package: when /usr/bin/chromium is missing, installs it
# (scripts/lib/debian.sh, as scripts/check_alerts.sh installs promtool). Playwright drives it
# through executable_path; Playwright's own browser downloads are never used. The Python
# package comes from requirements-browser.txt (the Makefile installs it into the venv).
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    # shellcheck source=scripts/lib/debian.sh
    . scripts/lib/debian.sh
    debian_install test_browser chromium
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
