"""The API's JSON parser: a request body is refused with a 400 before any view sees it when it nests deeper than
anything the API takes, or when a string in it holds a lone UTF-16 surrogate (``"\\ud800"``), which neither
PostgreSQL nor the JSON renderer can encode."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# No API payload nests more than a few levels (labels are flat); 64 leaves room and bounds the work per request.
MAX_JSON_DEPTH = 64
DEPTH_MESSAGE = f"JSON parse error - the document is nested deeper than {MAX_JSON_DEPTH} levels."
SURROGATE_MESSAGE = (
    "JSON parse error - a string contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), "
    "which is not a character."
)


def json_check(document) -> None:
    """Raise ParseError when ``document`` (parsed JSON) nests deeper than MAX_JSON_DEPTH or has a key or string
    that is not valid Unicode; walks the document with a stack, never by recursion."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _text_check(value)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ParseError(DEPTH_MESSAGE)
        if isinstance(value, dict):
            for key in value:
                _text_check(key)
            children = value.values()
        else:
            children = value
        stack.extend((child, depth + 1) for child in children)


def _text_check(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError(SURROGATE_MESSAGE) from None


class StrictJSONParser(JSONParser):
    """DRF's JSON parser (no NaN or Infinity), refusing deep nesting and lone surrogates (json_check)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            document = super().parse(stream, media_type, parser_context)
        except RecursionError:  # the decoder gives up long before a deep document could exhaust memory
            raise ParseError(DEPTH_MESSAGE) from None
        json_check(document)
        return document
