"""FOCUS out and back in: a ledger exported as FOCUS and imported as the bill reconciles to a zero difference on
every day (billing.ledger.reconciliation_list and the reconciliation API, which says the bill came from FOCUS);
a bill that differs shows exactly that difference."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from billing.focus.importer import focus_import
from billing.ledger import reconciliation_list
from tests.billing.focus_world import DAY1, DAY2, focus_world

pytestmark = pytest.mark.django_db

D = Decimal
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


def exported(admin_api) -> str:
    response = admin_api.get("/api/v1/spend/focus.csv", MARCH)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def billed_days(provider) -> list[tuple]:
    rows = reconciliation_list(provider=provider, start=DAY1, end=date(2026, 3, 5))
    return [(r["day"], r["estimated_usd"], r["billed_usd"], r["difference_usd"], r["difference_pct"]) for r in rows]


def test_the_exported_ledger_imported_as_the_bill_reconciles_to_zero(admin_api):
    world = focus_world()
    report = focus_import(file=io.BytesIO(exported(admin_api).encode()))
    assert (report.counted, report.other_providers) == (7, 2)  # the on-prem rows are no cloud's bill
    assert billed_days(world.aws) == [
        # p5 2 × $30 (the RI) + p5b $55.04 + spot 2 × $12.50 + the RI's 22 unused hours × $30
        (DAY1, D("800.04"), D("800.04"), D(0), D("0.00")),
        (DAY2, D("12.5"), D("12.5"), D(0), D("0.00")),
        (date(2026, 3, 4), D(0), None, None, None),
    ]
    assert billed_days(world.gcp)[0] == (DAY1, D("88.49"), D("88.49"), D(0), D("0.00"))
    assert billed_days(world.gcp)[1][2] is None  # GCP billed one day only
    response = admin_api.get("/api/v1/spend/reconciliation/", {"provider": world.aws.pk, **MARCH})
    assert response.status_code == 200
    rows = {row["day"]: row for row in response.json()}
    assert (rows["2026-03-02"]["source"], D(rows["2026-03-02"]["difference_usd"])) == ("focus", D(0))
    assert rows["2026-03-04"]["source"] is None


def test_a_known_difference(admin_api):
    """The cloud billed p5b's hour at $67.54 where the ledger estimated $55.04 (a price the catalogue missed)."""
    world = focus_world()
    reader = csv.DictReader(io.StringIO(exported(admin_api)))
    rows = list(reader)
    (p5b,) = [row for row in rows if row["ResourceId"] == "i-0p5b"]
    p5b["BilledCost"] = p5b["EffectiveCost"] = "67.540000"
    out = io.StringIO()
    writer = csv.DictWriter(out, reader.fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    focus_import(file=io.BytesIO(out.getvalue().encode()))
    # 12.50 of 812.54 billed: 1.54 %
    assert billed_days(world.aws)[:2] == [
        (DAY1, D("800.04"), D("812.54"), D("12.50"), D("1.54")),
        (DAY2, D("12.5"), D("12.5"), D(0), D("0.00")),
    ]
