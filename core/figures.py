"""How figures are written for people: money (thousands separators, 2 decimals, half up, as the reports show it)
and kgCO2e (0.1 kg, or tonnes with 2 decimals from TONNE_FROM_KG on). One rule for pages, emails and CSV: the
template filters of ``core.templatetags.fleetdeck`` and the CSV writers call these functions."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
KG_STEP = Decimal("0.1")
TONNE_STEP = Decimal("0.01")
# From this many kg on, kgCO2e is shown in tonnes (tCO2e).
TONNE_FROM_KG = Decimal(10_000)


def figure_decimal(value) -> Decimal | None:
    """``value`` (Decimal, int, float or a numeric string) as a Decimal; None when it is empty or not a number."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def money_text(value) -> str:
    """Money as shown everywhere: rounded half up to the cent, with thousands separators (1234.565 → "1,234.57");
    "" when ``value`` is not a number."""
    number = figure_decimal(value)
    if number is None:
        return ""
    return f"{number.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def co2e_kg_rounded(value) -> Decimal:
    """kgCO2e rounded half up to 0.1 kg: the precision of the kg figure on pages, in emails and in CSV."""
    number = figure_decimal(value)
    if number is None:
        raise ValueError(f"Not a kgCO2e figure: {value!r}.")
    return number.quantize(KG_STEP, rounding=ROUND_HALF_UP)


def co2e_text(value) -> str:
    """kgCO2e for people: "1,234.5 kgCO2e" (0.1 kg), or from 10,000 kg on "12.35 tCO2e" (10 kg); "" when
    ``value`` is not a number."""
    number = figure_decimal(value)
    if number is None:
        return ""
    kg = co2e_kg_rounded(number)
    if abs(kg) >= TONNE_FROM_KG:
        return f"{(number / 1000).quantize(TONNE_STEP, rounding=ROUND_HALF_UP):,.2f} tCO2e"
    return f"{kg:,.1f} kgCO2e"
