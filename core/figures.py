"""How figures are written for people: money (thousands separators, 2 decimals, half up, as the reports show it),
kgCO2e (0.1 kg, or tonnes with 2 decimals from TONNE_FROM_KG on), percentages (0.1 %), bytes (decimal units, as
egress is billed), GPU-hours (0.1 GPU-h) and plain numbers (thousands separators). One rule for pages and
emails: the template filters of ``core.templatetags.fleetdeck`` and the email subjects call these functions.
CSV cells stay machine-readable (plain decimals, no separators); only co2e_kg_rounded is shared with them.

Every function rounds half up, writes thousands separators, and returns "" for a value that is not a number
(None, "", garbage, NaN), so a template shows an empty cell rather than a wrong figure."""

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


def figure_rounded(value, step: Decimal) -> Decimal | None:
    """``value`` rounded half up to ``step`` (-0.001 to the cent is 0.00, not -0.00); None when it is not a number
    or too large to round to that step (more than 28 digits: no figure of ours)."""
    number = figure_decimal(value)
    if number is None:
        return None
    try:
        rounded = number.quantize(step, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None
    return abs(rounded) if rounded.is_zero() else rounded


def money_text(value) -> str:
    """Money as shown everywhere: rounded half up to the cent, with thousands separators (1234.565 → "1,234.57");
    "" when ``value`` is not a number. Pages and emails put the "$" before it; budgets too show their cents."""
    rounded = figure_rounded(value, CENT)
    return "" if rounded is None else f"{rounded:,.2f}"


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


def _step(places: int) -> Decimal:
    """The rounding step of ``places`` decimals (0 → 1, 1 → 0.1, 2 → 0.01)."""
    return Decimal(1).scaleb(-max(int(places), 0))


def number_text(value, places: int = 0) -> str:
    """A plain figure for people: rounded half up to ``places`` decimals, with thousands separators
    (1234567.5 → "1,234,568"; with 1 place "1,234,567.5"); "" when ``value`` is not a number."""
    places = max(int(places), 0)
    rounded = figure_rounded(value, _step(places))
    return "" if rounded is None else f"{rounded:,.{places}f}"


def percent_text(value, places: int = 1) -> str:
    """A percentage (``value`` already in %, e.g. 87.45): 0.1 % half up by default, with thousands separators and
    a space before the sign, as the pages always wrote it (87.45 → "87.5 %", 87 → "87.0 %"); "" when ``value``
    is not a number."""
    text = number_text(value, places)
    return f"{text} %" if text else ""


def gpu_hours_text(value) -> str:
    """GPU-hours for people: 0.1 GPU-h half up, with thousands separators (1234.45 → "1,234.5 GPU-h"); "" when
    ``value`` is not a number."""
    text = number_text(value, 1)
    return f"{text} GPU-h" if text else ""


# Decimal (SI) units: egress is priced per GB of 10**9 bytes, so sizes are written in the unit of the bill.
BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
BYTES_STEP = Decimal(1000)


def bytes_text(value) -> str:
    """A size in decimal units, as egress is billed: whole bytes under 1 kB ("999 B"), else at most one decimal
    of the largest unit under 1000 of it, half up ("1.5 GB", "512 MB", 999,950 B → "1 MB"); "" when ``value``
    is not a number."""
    whole = figure_rounded(value, Decimal(1))
    if whole is None:
        return ""
    if abs(whole) < BYTES_STEP:
        return f"{whole:,.0f} B"
    number = figure_decimal(value)
    for power, unit in enumerate(BYTE_UNITS[1:], start=1):
        scaled = figure_rounded(number / BYTES_STEP**power, _step(1))
        if abs(scaled) < BYTES_STEP or unit == BYTE_UNITS[-1]:
            break
    return f"{f'{scaled:,.1f}'.removesuffix('.0')} {unit}"
