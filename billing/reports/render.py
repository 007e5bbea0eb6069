"""A report as an email: subject, HTML (inline styles, chart by Content-ID), plain text, CSV and the chart PNG."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.template.loader import render_to_string

from billing.money import usd_cents
from billing.reports.chart import spend_chart_png
from billing.reports.data import ReportData
from core.csv import SafeDictWriter
from core.figures import co2e_kg_rounded, money_text
from core.validators import one_line

CHART_CID = "spend-chart@fleetdeck"
MILLI = Decimal("0.001")
CSV_COLUMNS = (
    "section",
    "key",
    "label",
    "total_usd",
    "compute_usd",
    "energy_usd",
    "idle_usd",
    "energy_kwh",
    "gpu_hours",
    "idle_gpu_hours",
    "egress_bytes",
    "budget_usd",
    "forecast_usd",
    "state",
    # The figures of issue 12 go at the end: readers of the CSV index its columns.
    "co2e_kg",
    "broken_gpu_hours",
    "broken_usd",
    "covered_usd",
    "unused_commitment_usd",
)
SPEND_SECTIONS = (("day", "daily"), ("provider", "by_provider"), ("team", "by_team"), ("gpu_model", "by_gpu_model"))


@dataclass(frozen=True)
class RenderedReport:
    """One report, ready to send: the parts of the email and the attachment."""

    subject: str
    html: str
    text: str
    csv_bytes: bytes
    chart_png: bytes
    total_usd: Decimal
    filename: str


def _spend_row(section: str, row: dict) -> dict:
    """One spend row of the CSV: money to the cent, kgCO2e to 0.1 kg (core.figures), hours and kWh to 0.001."""
    return {
        "section": section,
        "key": "" if row["key"] is None else str(row["key"]),
        "label": row["label"],
        "total_usd": usd_cents(row["total_usd"]),
        "compute_usd": usd_cents(row["compute_usd"]),
        "energy_usd": usd_cents(row["energy_usd"]),
        "idle_usd": usd_cents(row["idle_usd"]),
        "energy_kwh": row["energy_kwh"].quantize(MILLI),
        "gpu_hours": row["gpu_hours"].quantize(MILLI),
        "idle_gpu_hours": row["idle_gpu_hours"].quantize(MILLI),
        "co2e_kg": co2e_kg_rounded(row["co2e_kg"]),
        "broken_gpu_hours": row["broken_gpu_hours"].quantize(MILLI),
        "broken_usd": usd_cents(row["broken_usd"]),
        "covered_usd": usd_cents(row["covered_usd"]),
        "unused_commitment_usd": usd_cents(row["unused_commitment_usd"]),
    }


def report_csv(data: ReportData) -> bytes:
    """The report as CSV in long format: one row per (section, key); the ``total`` row is the report total.
    Names that start like a spreadsheet formula are neutralised (core.csv); amounts stay numbers."""
    out = io.StringIO()
    writer = SafeDictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="raise", lineterminator="\r\n")
    writer.writeheader()
    writer.writerow(
        _spend_row("total", {"key": "total", "label": data.scope_label, **data.totals.as_dict()})
        | {"egress_bytes": sum(r["bytes"] for r in data.egress_routes)}
    )
    for section, attr in SPEND_SECTIONS:
        for row in getattr(data, attr):
            writer.writerow(_spend_row(section, row))
    for route in data.egress_routes:
        writer.writerow(
            {
                "section": "egress",
                "key": f"{route['source']}>{route['destination']}",
                "label": f"{route['source']} → {route['destination']}",
                "total_usd": usd_cents(route["usd"]),
                "egress_bytes": route["bytes"],
            }
        )
    writer.writerow(
        {"section": "egress_total", "key": "egress", "label": "Egress", "total_usd": usd_cents(data.egress_usd)}
    )
    for node in data.idle_nodes:
        writer.writerow(
            {
                "section": "idle_node",
                "key": node["name"],
                "label": f"{node['name']} ({node['site']}, {node['team']})",
                "idle_usd": usd_cents(node["idle_usd"]),
                "idle_gpu_hours": node["idle_gpu_hours"].quantize(MILLI),
            }
        )
    for status in data.budgets:
        writer.writerow(
            {
                "section": "budget",
                "key": status.budget.pk,
                "label": status.label,
                "total_usd": usd_cents(status.spend_usd),
                "budget_usd": usd_cents(status.budget.monthly_usd),
                "forecast_usd": usd_cents(status.forecast_usd),
                "state": status.state,
            }
        )
    return out.getvalue().encode("utf-8")


def _unmarked(rendered: str) -> str:
    """Template output as a plain ``str``. ``render_to_string`` marks its result safe, but an email part is data
    to any page that shows it (the preview): unmarked, that page's autoescaping escapes it."""
    return str.__str__(rendered)


def report_subject(data: ReportData) -> str:
    """The email subject: scope, period and total, on one line even if a name stored before names were validated
    holds a line break (a header must not: BadHeaderError, or an injected header)."""
    return one_line(f"Fleetdeck cost report: {data.scope_label}, {data.period_label}: ${money_text(data.total_usd)}")


def report_render(data: ReportData, *, embed_chart: bool = False) -> RenderedReport:
    """Render ``data`` as an email. The HTML shows the chart from ``cid:CHART_CID`` (attached inline), or with
    ``embed_chart`` as a data: URI (a preview in the browser, where there is no Content-ID)."""
    chart_png = spend_chart_png(days=[(row["key"], row["total_usd"]) for row in data.daily])
    chart_src = f"cid:{CHART_CID}"
    if embed_chart:
        chart_src = "data:image/png;base64," + base64.b64encode(chart_png).decode("ascii")
    context = {
        "data": data,
        "total_usd": usd_cents(data.total_usd),
        "chart_src": chart_src,
        "egress_bytes": sum(r["bytes"] for r in data.egress_routes),
    }
    return RenderedReport(
        subject=report_subject(data),
        html=_unmarked(render_to_string("billing/email/report.html", context)),
        text=_unmarked(render_to_string("billing/email/report.txt", context)),
        csv_bytes=report_csv(data),
        chart_png=chart_png,
        total_usd=usd_cents(data.total_usd),
        # Named by the first and last day, as the spend CSV is: people read the file name.
        filename=f"fleetdeck-cost-{data.period_start:%Y-%m-%d}-{data.period_end - timedelta(days=1):%Y-%m-%d}.csv",
    )
