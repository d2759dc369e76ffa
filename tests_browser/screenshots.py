"""`make screenshots`: pictures of the inbox for docs/inbox.md, taken in headless Chromium
through the same real server as the browser tests (tests_browser/harness.py).

A few customers write to client A (two ask for a person, in English and in Arabic; two are
answered by the bot); its agent answers one, and Meta's statuses mark the reply
delivered and read. Then the conversation list and the open conversation are shot at desktop
(1280×800) and phone (390×844) width, in English and in Arabic, into
docs/screenshots/inbox-<page>-<width>-<language>.png.

Usage: python -m tests_browser.screenshots (what `make screenshots` runs)
"""

from __future__ import annotations

import os
import sys
import time

from tests_browser.harness import (
    DESKTOP,
    PASSWORD,
    PHONE,
    ROOT,
    Harness,
    launch_chromium,
)

OUT = ROOT / "docs" / "screenshots"
CUSTOMERS = [
    ("Layla Haddad", "Hello, can I speak to a person about my refund?"),
    ("عمر خالد", "أريد التحدث مع موظف بخصوص طلبي"),
    ("Daniel Okafor", "What are your opening hours on Friday?"),
    ("سارة محمود", "هل توصلون إلى جدة؟"),
]
REPLY = "Hi Layla, this is Sara. I have found your order: the refund went out this morning."


def main() -> int:
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # see tests_browser/conftest.py
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)
    OUT.mkdir(parents=True, exist_ok=True)
    harness = Harness().start()
    written = []
    try:
        tenant = harness.tenants["a"]
        conversations = []
        for n, (name, text) in enumerate(CUSTOMERS):
            harness.send_text(tenant, wa_id=harness.customer(n), text=text, name=name)
            conversations.append(harness.conversation_of(tenant, harness.customer(n)))
            time.sleep(0.3)  # distinct times in the list
        # Every customer has had the bot's answer (or handoff acknowledgement).
        harness.graph.wait_for(len(CUSTOMERS), timeout=30)
        first = conversations[0]
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            context = browser.new_context(base_url=harness.base_url, viewport=DESKTOP)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto("/inbox/login/")
            page.fill("input[name=username]", tenant.agent_email)
            page.fill("input[name=password]", PASSWORD)
            page.click("form:has(input[name=password]) button[type=submit]")
            page.wait_for_url(f"**/inbox/{tenant.slug}/")

            # The agent answers Layla (waiting for a person); Meta reports the reply read.
            page.goto(f"/inbox/{tenant.slug}/c/{first.pk}/")
            page.fill("#reply-form textarea[name=text]", REPLY)
            page.click("#reply-send")
            bubble = page.locator('[data-direction="out"]', has_text=REPLY)
            expect(bubble).to_have_attribute("data-status", "sent")
            meta_id = harness.message(
                tenant, int(bubble.get_attribute("data-message-id"))
            ).external_id
            for status in ("delivered", "read"):
                harness.send_status(
                    tenant, message_id=meta_id, status=status, recipient=harness.customer(0)
                )
            expect(bubble).to_have_attribute("data-status", "read")

            pages = {
                "list": f"/inbox/{tenant.slug}/",
                "conversation": f"/inbox/{tenant.slug}/c/{first.pk}/",
            }
            for language in ("en", "ar"):
                page.goto(pages["list"])
                page.select_option("#language-form select[name=language]", language)
                expect(page.locator("html")).to_have_attribute("lang", language)
                for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                    page.set_viewport_size(viewport)
                    for name, url in pages.items():
                        page.goto(url)
                        page.wait_for_load_state("networkidle")
                        path = OUT / f"inbox-{name}-{width}-{language}.png"
                        page.screenshot(path=str(path))
                        written.append(path)
            browser.close()
    finally:
        harness.stop()
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
