"""Template helpers shared by the dashboard pages."""

from django import template

register = template.Library()


@register.inclusion_tag("core/htmx/chart_table.html")
def chart_table(chart: dict, unit: str = ""):
    """The numbers behind a chart as a collapsed table, so the page reads without JavaScript."""
    rows = [(label, [ds["data"][i] for ds in chart["datasets"]]) for i, label in enumerate(chart["labels"])]
    return {"chart": chart, "rows": rows, "unit": unit}
