"""Small display helpers for the inbox's templates (translated)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from django import template
from django.utils.dateformat import format as date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext

register = template.Library()

# How each outbound status is shown: the tick marks and their spoken label.
TICKS = {
    "queued": ("◷", lambda: _("Queued")),
    "sent": ("✓", lambda: _("Sent")),
    "delivered": ("✓✓", lambda: _("Delivered")),
    "read": ("✓✓", lambda: _("Read")),
    "failed": ("!", lambda: _("Not delivered")),
    "not_sent": ("–", lambda: _("Draft not sent")),
}


# What a non-text message is called ([image] and so on), in the page's language.
KINDS = {
    "image": lambda: pgettext("message kind", "image"),
    "audio": lambda: pgettext("message kind", "voice message"),
    "video": lambda: pgettext("message kind", "video"),
    "document": lambda: pgettext("message kind", "document"),
    "sticker": lambda: pgettext("message kind", "sticker"),
    "location": lambda: pgettext("message kind", "location"),
    "contacts": lambda: pgettext("message kind", "contact card"),
    "template": lambda: pgettext("message kind", "template"),
    "reaction": lambda: pgettext("message kind", "reaction"),
    "interactive": lambda: pgettext("message kind", "buttons"),
    "button": lambda: pgettext("message kind", "button"),
    "share": lambda: pgettext("message kind", "shared post"),
    "story_mention": lambda: pgettext("message kind", "story mention"),
    "unsupported": lambda: pgettext("message kind", "unsupported message"),
}

# Where a referral came from (Meta's source_type).
SOURCES = {
    "ad": lambda: pgettext("referral source", "ad"),
    "post": lambda: pgettext("referral source", "post"),
}

# Date formats (Django's date filter letters) a translator orders for the language: the month
# names themselves come from Django's own catalogue ("M" is "Dec" in English, "ديسمبر" in Arabic).
WHEN = {
    "datetime": lambda: pgettext("date format", "M j, H:i"),
    "full": lambda: pgettext("date format", "M j, Y H:i"),
    "day": lambda: pgettext("date format", "M j"),
}


@register.filter
def kind_label(kind: str) -> str:
    """'image' -> 'image' / 'صورة'; an unknown kind as it is."""
    label = KINDS.get(kind)
    return label() if label else kind


@register.filter
def source_label(source: str) -> str:
    """Meta's referral source_type ('ad', 'post') in the page's language."""
    label = SOURCES.get(source)
    return label() if label else source


@register.filter
def language_label(code: str) -> str:
    """A language code ('en', 'ar-SA') by its name in the page's language; unknown codes as they are."""
    from django.utils.translation import get_language_info

    for candidate in (code, (code or "").split("-")[0].split("_")[0]):
        try:
            return get_language_info(candidate)["name_translated"]
        except KeyError:
            continue
    return code


@register.filter
def when(value, style: str = "datetime") -> str:
    """A date and time in the page's language and order ('' for None)."""
    if value is None:
        return ""
    from django.utils import timezone

    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return date_format(value, WHEN[style]())


@register.filter
def duration(value: timedelta | None) -> str:
    """'3 h 05 min', '12 min', 'less than a minute' ('' for None)."""
    if value is None:
        return ""
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return _("less than a minute")
    hours, minutes = divmod(minutes, 60)
    if hours:
        return _("%(hours)s h %(minutes)02d min") % {"hours": hours, "minutes": minutes}
    return ngettext("%(count)s min", "%(count)s min", minutes) % {"count": minutes}


@register.filter
def tick_marks(status: str) -> str:
    return TICKS.get(status, ("", None))[0]


@register.filter
def tick_label(status: str) -> str:
    label = TICKS.get(status, (None, None))[1]
    return label() if label else status


@register.filter
def web_link(url: str) -> str:
    """The URL when it is an http(s) link (media Meta serves), else '' (never javascript:)."""
    return url if url and urlsplit(url).scheme in {"http", "https"} else ""


@register.simple_tag
def query_with(query: str, **changes) -> str:
    """The filter query string with some parameters changed (pagination links)."""
    from urllib.parse import parse_qsl, urlencode

    values = dict(parse_qsl(query))
    values.update({key: str(value) for key, value in changes.items() if value not in (None, "")})
    return urlencode(values)


@register.filter
def window_left(conversation) -> timedelta | None:
    from desk.selectors import window_left as left

    return left(conversation)


@register.filter
def parameter_numbers(count) -> range:
    """1..count, for a template's parameter inputs."""
    return range(1, int(count or 0) + 1)
