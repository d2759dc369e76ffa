"""Every URL route of the project, for the tests that check each one is guarded (the API's
isolation table, the inbox's sweep)."""

from __future__ import annotations

from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, object]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def url_routes() -> Iterator[tuple[str, object]]:
    """(route as written, e.g. "inbox/<slug:slug>/", view callback) for every route."""
    return _walk(get_resolver().url_patterns)
