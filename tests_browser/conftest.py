"""Fixtures of the browser tests: one real Wafaa (tests_browser/harness.py) and one headless
Chromium (Debian's package, driven by Playwright) for the whole session; a fresh browser
context (cookies, viewport, language) for each test.

Run with `make test-browser` (installs Chromium and Playwright when missing); `make test`
never collects this directory (pyproject's testpaths).
"""

from __future__ import annotations

import os

import pytest

from tests_browser.harness import DESKTOP, Harness, launch_chromium

# Playwright's sync API keeps an asyncio loop running in this thread, which Django's ORM takes
# for an async context; the tests' ORM reads are plain synchronous code (Django's documented
# switch for this case). Only this process: the harness does not pass it to the server.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="session")
def harness():
    running = Harness().start()
    phases = ", ".join(f"{name} {at:.1f} s" for name, at in running.timings.items())
    print(f"\nharness: Wafaa on {running.base_url}, ready in {running.started_in:.1f} s ({phases})")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser, harness):
    """Pages in fresh contexts (no cookies shared): `new_page()` or
    `new_page(viewport=PHONE)`. Every context is closed after the test."""
    contexts = []

    def make(viewport=DESKTOP, locale="en-US"):
        context = browser.new_context(base_url=harness.base_url, viewport=viewport, locale=locale)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()
