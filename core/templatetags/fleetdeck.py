"""Template helpers shared by the dashboard pages."""

from django import template

from core.figures import co2e_text, money_text

register = template.Library()


@register.filter
def usd(value) -> str:
    """Money as pages and emails show it: "1,234.57" (half up, thousands separators; core.figures)."""
    return money_text(value)


@register.filter
def co2e(value) -> str:
    """kgCO2e as pages and emails show it: "1,234.5 kgCO2e", or "12.35 tCO2e" from 10,000 kg (core.figures)."""
    return co2e_text(value)


@register.inclusion_tag("core/htmx/chart_table.html")
def chart_table(chart: dict, unit: str = ""):
    """The numbers behind a chart as a collapsed table, so the page reads without JavaScript."""
    rows = [(label, [ds["data"][i] for ds in chart["datasets"]]) for i, label in enumerate(chart["labels"])]
    return {"chart": chart, "rows": rows, "unit": unit}
