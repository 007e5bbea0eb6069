"""Template helpers shared by the pages and emails: every figure a person reads goes through core.figures."""

from datetime import date, timedelta

from django import template

from core.figures import bytes_text, co2e_text, gpu_hours_text, money_text, number_text, percent_text

register = template.Library()


def _places(arg, default: int) -> int:
    """A filter's decimal places argument ("2" or 2); ``default`` when it is missing or not a small number."""
    try:
        places = int(arg)
    except (TypeError, ValueError):
        return default
    return places if 0 <= places <= 6 else default


@register.filter
def usd(value) -> str:
    """Money as pages and emails show it: "1,234.57" (half up, thousands separators; core.figures)."""
    return money_text(value)


@register.filter
def co2e(value) -> str:
    """kgCO2e as pages and emails show it: "1,234.5 kgCO2e", or "12.35 tCO2e" from 10,000 kg (core.figures)."""
    return co2e_text(value)


@register.filter
def pct(value, places=1) -> str:
    """A percentage as pages and emails show it: "87.5 %" (0.1 % half up; ``|pct:2`` for 0.01 %)."""
    return percent_text(value, _places(places, 1))


@register.filter
def gpu_hours(value) -> str:
    """GPU-hours as pages and emails show it: "1,234.5 GPU-h" (core.figures)."""
    return gpu_hours_text(value)


@register.filter(name="bytes")
def bytes_(value) -> str:
    """A size in decimal units, as egress is billed: "999 B", "512 MB", "1.5 GB" (core.figures)."""
    return bytes_text(value)


@register.filter
def number(value, places=0) -> str:
    """A plain figure with thousands separators: "1,235" (``|number:1`` for "1,234.5"; core.figures)."""
    return number_text(value, _places(places, 0))


@register.filter
def last_day(end):
    """The last day of a period stored with an exclusive end, as people read periods ("23 Nov – 29 Nov" for
    [23 Nov, 30 Nov)); None when ``end`` is not a date. The code and the API keep the exclusive end."""
    return end - timedelta(days=1) if isinstance(end, date) else None


@register.inclusion_tag("core/htmx/chart_table.html")
def chart_table(chart: dict, unit: str = ""):
    """The numbers behind a chart as a collapsed table, so the page reads without JavaScript; a chart in "$"
    shows its money as every page does (money_text), a gap stays a gap (None: "—")."""
    rows = [(label, [ds["data"][i] for ds in chart["datasets"]]) for i, label in enumerate(chart["labels"])]
    if unit == "$":
        rows = [(label, [None if v is None else money_text(v) for v in values]) for label, values in rows]
    return {"chart": chart, "rows": rows, "unit": unit}
