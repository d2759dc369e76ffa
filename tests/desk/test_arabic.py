"""The Arabic inbox: the committed .mo says what the .po says (a fresh machine has no gettext
to compile it), every entry is translated, and the pages an agent works in are right-to-left
with no English label left (month names included)."""

from __future__ import annotations

import ast
import gettext
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client as HttpClient
from django.utils import translation

from conversations import services
from conversations.models import Conversation, Message
from tests.conftest import inside
from tests.desk.conftest import receive

LOCALE = Path(__file__).resolve().parents[2] / "desk" / "locale" / "ar" / "LC_MESSAGES"
ARABIC_MONTHS = "يناير|فبراير|مارس|أبريل|إبريل|مايو|يونيو|يوليو|أغسطس|سبتمبر|أكتوبر|نوفمبر|ديسمبر"


def po_entries(path: Path) -> list[dict]:
    """The .po's entries (obsolete ones left out): msgctxt, msgid, msgid_plural, msgstr (a str,
    or a list by plural index), and whether it is fuzzy. A small reader: no new dependency."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        flags = ""
        for line in block.splitlines():
            if line.startswith("#,"):
                flags += line
            elif match := re.match(
                r"^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?) (\".*\")$", line
            ):
                key = match.group(1)
                fields[key] = ast.literal_eval(match.group(2))
            elif line.startswith('"') and key:
                fields[key] += ast.literal_eval(line)
        if "msgid" not in fields or not fields["msgid"]:
            continue
        plural = sorted(k for k in fields if k.startswith("msgstr["))
        entries.append(
            {
                "msgctxt": fields.get("msgctxt"),
                "msgid": fields["msgid"],
                "msgid_plural": fields.get("msgid_plural"),
                "msgstr": [fields[k] for k in plural] if plural else fields.get("msgstr", ""),
                "fuzzy": "fuzzy" in flags,
            }
        )
    return entries


ENTRIES = po_entries(LOCALE / "django.po")


def arabic_plural(n: int) -> int:
    return (
        0
        if n == 0
        else 1
        if n == 1
        else 2
        if n == 2
        else 3
        if 3 <= n % 100 <= 10
        else 4
        if n % 100 >= 11
        else 5
    )


def test_the_catalogue_is_whole():
    assert len(ENTRIES) > 100
    untranslated = [
        e["msgid"]
        for e in ENTRIES
        if e["fuzzy"]
        or (len(e["msgstr"]) != 6 or not all(e["msgstr"]) if e["msgid_plural"] else not e["msgstr"])
    ]
    assert untranslated == [], "translate these in desk/locale/ar/LC_MESSAGES/django.po"
    header = (LOCALE / "django.po").read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "#, fuzzy" not in header  # msgfmt would drop a fuzzy header: charset and plurals lost
    placeholder = re.compile(r"%\(\w+\)\w|\{\w+\}")
    for entry in ENTRIES:  # every placeholder kept, in every form
        wanted = set(placeholder.findall(entry["msgid"]))
        forms = entry["msgstr"] if isinstance(entry["msgstr"], list) else [entry["msgstr"]]
        for index, form in enumerate(forms):
            found = set(placeholder.findall(form))
            if entry["msgid_plural"] and index in (0, 1, 2):
                # Arabic says none, one and two in words ("مدخل واحد", "مدخلان"): the count may
                # be left out there (named placeholders format without it), nothing else.
                assert found <= wanted and wanted - found <= {"%(count)s"}, entry["msgid"]
            else:
                assert found == wanted, entry["msgid"]


def test_the_committed_mo_says_what_the_po_says():
    """Run `django-admin compilemessages` inside desk/ (and commit the .mo) when this fails."""
    with (LOCALE / "django.mo").open("rb") as compiled:
        mo = gettext.GNUTranslations(compiled)
    assert mo.info()["plural-forms"].startswith("nplurals=6;")
    stale = []
    for entry in ENTRIES:
        ctx, msgid = entry["msgctxt"], entry["msgid"]
        if entry["msgid_plural"]:
            for n in (0, 1, 2, 3, 11, 100):
                want = entry["msgstr"][arabic_plural(n)]
                got = (
                    mo.npgettext(ctx, msgid, entry["msgid_plural"], n)
                    if ctx
                    else mo.ngettext(msgid, entry["msgid_plural"], n)
                )
                if got != want:
                    stale.append((msgid, n, got))
        else:
            got = mo.pgettext(ctx, msgid) if ctx else mo.gettext(msgid)
            if got != entry["msgstr"]:
                stale.append((msgid, got))
    assert stale == []
    # And no msgid the .po no longer has (a string renamed in the templates but not recompiled).
    known = {(e["msgctxt"], e["msgid"]) for e in ENTRIES}
    extra = [
        key
        for key in mo._catalog  # type: ignore[attr-defined]
        if (key[0] if isinstance(key, tuple) else key)
        and _split(key[0] if isinstance(key, tuple) else key) not in known
    ]
    assert extra == []


def _split(key: str) -> tuple[str | None, str]:
    ctx, sep, msgid = key.partition("\x04")
    return (ctx, msgid) if sep else (None, key)


def test_django_serves_the_desk_translation_over_its_own():
    """Our LOCALE_PATHS catalogue wins over Django's (which also has 'Close', 'Next', ...)."""
    with translation.override("ar"):
        for entry in ENTRIES:
            ctx, msgid = entry["msgctxt"], entry["msgid"]
            if entry["msgid_plural"]:
                for n in (0, 1, 2, 5, 11, 101):
                    got = (
                        translation.npgettext(ctx, msgid, entry["msgid_plural"], n)
                        if ctx
                        else translation.ngettext(msgid, entry["msgid_plural"], n)
                    )
                    assert got == entry["msgstr"][arabic_plural(n)], (msgid, n)
            else:
                got = translation.pgettext(ctx, msgid) if ctx else translation.gettext(msgid)
                assert got == entry["msgstr"], msgid


class VisibleText(HTMLParser):
    """The page's text and the labels people hear (title, aria-label, placeholder, a submit's
    value), leaving out what customers, agents and clients wrote or named (isolated in <bdi> or
    dir="auto"/"ltr": their own words)."""

    VOID = {"meta", "link", "input", "br", "img", "hr"}

    def __init__(self):
        super().__init__()
        self.stack: list[bool] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        own = (tag != "html" and attrs.get("dir") in {"auto", "ltr"}) or tag in {
            "bdi",
            "script",
            "style",
            "title",
        }
        inside_own = any(self.stack) or own
        for name in ("title", "aria-label", "placeholder"):
            if attrs.get(name) and not inside_own:
                self.texts.append(attrs[name])
        if tag == "input" and attrs.get("type") == "submit":
            self.texts.append(attrs.get("value") or "")
        if tag not in self.VOID:
            self.stack.append(own)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not any(self.stack) and data.strip():
            self.texts.append(data.strip())


# Names, not labels: they stay as they are in an Arabic page.
NAMES = {"Wafaa", "WhatsApp", "Instagram", "Meta", "English"}


def english_left(html: str) -> list[str]:
    parser = VisibleText()
    parser.feed(html)
    left = []
    for text in parser.texts:
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z.@_-]+", text) if "@" not in w]
        if [w for w in words if w not in NAMES and len(w) > 2]:
            left.append(text)
    return left


@pytest.fixture
def arabic():
    """A browser whose Accept-Language asks for Arabic."""
    return {"HTTP_ACCEPT_LANGUAGE": "ar"}


def test_the_login_page_in_arabic(db, arabic):
    html = HttpClient().get("/inbox/login/", **arabic).content.decode()
    assert '<html lang="ar" dir="rtl">' in html
    assert "تسجيل الدخول إلى صندوق الوارد" in html and "كلمة المرور" in html
    assert english_left(html) == []
    wrong = HttpClient().post(
        "/inbox/login/", {"username": "nobody@example.com", "password": "x"}, **arabic
    )
    assert "البريد الإلكتروني أو كلمة المرور غير صحيحة." in wrong.content.decode()


def test_the_list_and_the_conversation_in_arabic(as_agent, tenant_a, shop, conversation):
    with inside(tenant_a):
        services.message_store_outbound(
            conversation=conversation, author="agent", text="أهلًا", status="delivered"
        )
        receive(shop, "", type_="image")
        Conversation.objects.filter(pk=conversation.pk).update(
            mode="handoff", ad_source_type="ad", ad_source_id="ad-9"
        )
        Message.objects.filter(conversation=conversation).update(author_email="")
    as_agent.post("/inbox/i18n/setlang/", {"language": "ar", "next": "/inbox/"})

    listing = as_agent.get(f"/inbox/{tenant_a.slug}/").content.decode()
    assert '<html lang="ar" dir="rtl">' in listing
    for label in ("المحادثات", "بانتظار موظف", "ابحث بالاسم أو الرقم", "تصفية", "إعلان"):
        assert label in listing, label
    assert "[صورة]" in listing  # the last message's kind, translated
    assert english_left(listing) == []

    page = as_agent.get(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/").content.decode()
    assert '<html lang="ar" dir="rtl">' in page
    for label in ("إعادة إلى البوت", "إغلاق", "إرسال", "العميل", "أول تواصل", "وصلت"):
        assert label in page, label
    # The customer's language by its Arabic name, not its code.
    assert re.search(r'id="customer-language" data-language="en">الإنجليزي', page)
    # Django's Arabic month names, in the Arabic order (day, month، time).
    assert re.search(rf"\d{{1,2}} ({ARABIC_MONTHS})، \d\d:\d\d", page)
    assert english_left(page) == []

    live = as_agent.get(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/live/").content.decode()
    assert "سجل المحادثة" in live and english_left(live) == []


def test_the_english_pages_still_speak_english(as_agent, tenant_a, conversation):
    """The same checks would catch nothing if the pages were Arabic for everyone."""
    page = as_agent.get(f"/inbox/{tenant_a.slug}/c/{conversation.pk}/").content.decode()
    assert '<html lang="en" dir="ltr">' in page
    assert "Hand back to the bot" in english_left(page)
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d\d:\d\d", page)
