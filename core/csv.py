"""CSV that is safe to open in a spreadsheet (OWASP "CSV injection"): a text cell that starts like a formula is
written with a leading ``'``, so the spreadsheet shows it as text instead of running it. Every CSV the app writes
for people uses these writers."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import Any

# What a spreadsheet reads as the start of a formula (or of a cell it then re-parses).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """``value`` as a cell: a string starting like a formula gets a leading ``'``; numbers and every other value
    are returned as they are, so an amount, even a negative one, stays a number."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose cells go through ``csv_safe``."""

    def __init__(self, out, **fmtparams):
        self._writer = csv.writer(out, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> Any:
        """Write one row, its text cells neutralised."""
        return self._writer.writerow([csv_safe(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        """Write every row, their text cells neutralised."""
        for row in rows:
            self.writerow(row)


class SafeDictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose cells go through ``csv_safe``."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        """Write one row, its text cells neutralised."""
        return super().writerow({key: csv_safe(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        """Write every row, their text cells neutralised (``DictWriter.writerows`` would bypass ``writerow``)."""
        for rowdict in rowdicts:
            self.writerow(rowdict)
