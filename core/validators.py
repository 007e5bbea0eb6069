"""Validators shared by every app's models (core imports no other app)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# Unicode category Cc (C0 controls, DEL, C1 controls) and the line and paragraph separators U+2028/U+2029.
CONTROL_CHARS_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def validate_one_line(value: str) -> None:
    """A name is one line of text: no line breaks, tabs or other control characters (they would break the email
    headers built from it, and the pages and CSVs that show it)."""
    if CONTROL_CHARS_RE.search(value):
        raise ValidationError(
            "Use one line of text: no line breaks, tabs or other control characters.", code="control_characters"
        )


def one_line(value: str) -> str:
    """``value`` with each run of control characters and line separators replaced by one space: for an email
    header built from names stored before they were validated."""
    return CONTROL_CHARS_RE.sub(" ", value)
