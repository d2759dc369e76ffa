"""The API's JSON parser: malformed, hostile or unstorable JSON is a 400, never a 500.

DRF's JSONParser lets `RecursionError` out of `json.load` (a body of 100,000 nested `[`
takes a few bytes to send) and hands strings with NUL characters to the database, which
PostgreSQL refuses with an error. This parser turns both, and nesting deeper than any of our
endpoints reads, into a ParseError, rendered in the error envelope as `malformed_request`.
"""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# No API body nests deeper than a few levels; this leaves room and stays far from Python's
# recursion limit in anything that walks the data afterwards.
MAX_DEPTH = 32


def check_json_value(value, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ParseError when `value` nests deeper than `max_depth` or holds a NUL character.

    Iterative on purpose: a recursive walk would fail on the very input it guards against.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ParseError("JSON strings must not contain NUL (\\u0000) characters.")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise ParseError(f"JSON nested deeper than {max_depth} levels is not accepted.")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        check_json_value(data)
        return data
