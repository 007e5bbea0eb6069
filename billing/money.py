"""Rounding money for display: one rule (half up, to the cent) for pages, reports, emails and alerts."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def usd_cents(value) -> Decimal:
    """``value`` rounded to the cent, half up (12.345 → 12.35), as shown everywhere money is displayed."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
