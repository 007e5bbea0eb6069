"""Strict integer and id fields: an id is a JSON integer or a string of ASCII digits, nothing else.

``int()``, which DRF's fields and Django's lookups rely on, also reads ``"١٢٣"`` (Arabic-Indic digits) as 123,
``" 1"``, ``"+1"`` and ``"1_0"`` as numbers, and truncates ``1.5`` to 1, so a sloppy or hostile id named another
row than the one written. These fields refuse all of those with a 400 that says what an id looks like.
"""

from __future__ import annotations

import re

from rest_framework import serializers

ASCII_INTEGER = re.compile(r"-?[0-9]{1,19}")
# The largest primary key PostgreSQL can hold (bigint); a larger number names no row.
MAX_ID = 2**63 - 1
ID_MESSAGE = "Expected an id: a whole number written in ASCII digits (0-9)."


def ascii_integer(value) -> int | None:
    """``value`` as an int when it is one (not a bool) or a string of ASCII digits with an optional minus sign,
    of at most 19 digits; None for anything else (floats, other scripts' digits, spaces, signs, exponents)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and ASCII_INTEGER.fullmatch(value):
        return int(value)
    return None


def id_value(value) -> int | None:
    """``value`` as a primary key (an ascii_integer from 0 to MAX_ID), or None when it cannot be one."""
    number = ascii_integer(value)
    return number if number is not None and 0 <= number <= MAX_ID else None


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A related object by its integer primary key, given as a JSON integer or a string of ASCII digits."""

    default_error_messages = {"incorrect_type": ID_MESSAGE + " Received {data_type}."}

    def to_internal_value(self, data):
        pk = ascii_integer(data)
        if pk is None:
            self.fail("incorrect_type", data_type=type(data).__name__)
        if id_value(pk) is None:
            self.fail("does_not_exist", pk_value=pk)
        return super().to_internal_value(pk)


class IdField(serializers.IntegerField):
    """An id in a query or body (``?team=3``) that is not a model relation: strict as StrictPrimaryKeyRelatedField,
    at least 1 and at most MAX_ID unless given other bounds."""

    default_error_messages = {"invalid": ID_MESSAGE}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        number = ascii_integer(data)
        if number is None:
            self.fail("invalid")
        return number
