"""The FOCUS import (billing/focus/importer.py, manage.py import_focus, POST /api/v1/billed-costs/focus-import/):
AWS Data Exports and GCP FOCUS rows summed per account and day by the documented filter, gzip, re-imports, every
kind of bad input refused by line with nothing written, and who may import."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from billing.choices import BilledCostSource
from billing.focus.importer import FocusImportError, focus_import
from billing.models import BilledCost
from core.choices import Role
from fleet.choices import ProviderKind
from tests.factories import ProviderFactory

pytestmark = pytest.mark.django_db

D = Decimal
URL = "/api/v1/billed-costs/focus-import/"
COLUMNS = (
    "BilledCost", "EffectiveCost", "BillingAccountId", "SubAccountId", "BillingCurrency", "ChargeCategory",
    "ChargeClass", "ChargeDescription", "ChargePeriodStart", "ChargePeriodEnd", "CommitmentDiscountStatus",
    "ProviderName", "ServiceCategory", "ServiceName", "x_UsageType",
)  # fmt: skip
PAYER, AWS_ACCOUNT, GCP_BILLING, GCP_PROJECT = "999999999999", "111111111111", "01A2B3-C4D5E6-F7A8B9", "fleet-gcp-1"


def aws(day: str, effective: str, usage_type: str = "USE1-BoxUsage:p5.48xlarge", **cells) -> dict:
    """One hour of an AWS Data Exports "FOCUS 1.0 with AWS columns" row (linked account under a payer)."""
    hour = cells.pop("hour", "00")
    return {
        "BilledCost": effective,
        "EffectiveCost": effective,
        "BillingAccountId": PAYER,
        "SubAccountId": AWS_ACCOUNT,
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargeDescription": "$55.04 per On Demand Linux p5.48xlarge Instance Hour",
        "ChargePeriodStart": f"{day}T{hour}:00:00.000Z",
        "ChargePeriodEnd": f"{day}T{int(hour) + 1:02d}:00:00.000Z",
        "ProviderName": "AWS",
        "ServiceCategory": "Compute",
        "ServiceName": "Amazon Elastic Compute Cloud",
        "x_UsageType": usage_type,
        **cells,
    }


def gcp(day: str, effective: str, description: str = "A3 Instance Core running in Americas", **cells) -> dict:
    """One day of a row of GCP's FOCUS view exported from BigQuery as CSV (its timestamps read '… UTC')."""
    return {
        "BilledCost": effective,
        "EffectiveCost": effective,
        "BillingAccountId": GCP_BILLING,
        "SubAccountId": GCP_PROJECT,
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargeDescription": description,
        "ChargePeriodStart": f"{day} 00:00:00 UTC",
        "ChargePeriodEnd": f"{day} 23:59:59 UTC",
        "ProviderName": "Google Cloud",
        "ServiceCategory": "Compute",
        "ServiceName": "Compute Engine",
        **cells,
    }


def focus_csv(rows: list[dict], columns=COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def upload(text: str, *, gz: bool = False, name: str = "focus.csv") -> SimpleUploadedFile:
    data = gzip.compress(text.encode()) if gz else text.encode()
    return SimpleUploadedFile(name + (".gz" if gz else ""), data, content_type="text/csv")


@pytest.fixture
def providers(db):
    return {
        "aws": ProviderFactory(name="aws-main", account_id=AWS_ACCOUNT),
        "gcp": ProviderFactory(name="gcp-main", kind=ProviderKind.GCP, account_id=GCP_PROJECT, credential_ref="adc"),
    }


AWS_MONTH = [
    aws("2026-03-02", "55.04", hour="00"),
    aws("2026-03-02", "55.04", hour="01"),
    aws("2026-03-02", "12.5", "USE1-SpotUsage:p4d.24xlarge", hour="02"),
    aws("2026-03-02", "30", hour="03", BilledCost="0", CommitmentDiscountStatus="Used"),  # covered by a prepaid RI
    aws(
        "2026-03-02", "30", "USE1-HeavyUsage:p5.48xlarge", hour="04", BilledCost="0", CommitmentDiscountStatus="Unused"
    ),
    aws("2026-03-02", "4.8", "USE1-EBS:VolumeUsage.gp3", ServiceCategory="Storage"),  # EBS: left out
    aws("2026-03-02", "0.9", "USE1-NatGateway-Hours"),  # EC2 "Compute" but not an instance hour: left out
    aws("2026-03-02", "1.1", "USE1-DataTransfer-Out-Bytes", ServiceCategory="Networking"),
    aws("2026-03-02", "2.2", "", ServiceName="Amazon Simple Storage Service", ServiceCategory="Storage"),
    aws("2026-03-02", "9.5", "", ChargeCategory="Tax"),
    aws("2026-03-02", "-5", "", ChargeCategory="Credit"),
    aws("2026-03-02", "21900", "", ChargeCategory="Purchase", ChargeDescription="RI upfront fee"),
    aws("2026-03-04", "110.08", hour="07"),
]
GCP_DAYS = [
    gcp("2026-03-02", "20.25"),
    gcp("2026-03-02", "5.10", "A3 Instance Ram running in Americas"),
    gcp("2026-03-02", "63.14", "Nvidia H100 80GB GPU running in Americas"),
    gcp("2026-03-02", "3.4", "SSD backed PD Capacity"),  # Compute Engine "Compute", a disk: left out
    gcp("2026-03-02", "0.7", "Network Internet Data Transfer Out from Americas to Americas"),
    gcp("2026-03-03", "88.49", "Spot Preemptible Nvidia H100 80GB GPU running in Americas"),
]
OTHERS = [
    {**aws("2026-03-02", "40"), "ProviderName": "Microsoft", "ServiceName": "Virtual Machines"},
]


def billed() -> dict:
    return {(b.provider.name, b.day): (b.usd, b.source) for b in BilledCost.objects.select_related("provider")}


def test_aws_and_gcp_exports_become_billed_costs_per_account_and_day(providers):
    report = focus_import(file=io.BytesIO(focus_csv(AWS_MONTH + GCP_DAYS + OTHERS).encode()))
    focus = BilledCostSource.FOCUS
    assert billed() == {
        # 55.04 × 2 + 12.5 spot + 30 covered + 30 unused RI, by EffectiveCost
        ("aws-main", date(2026, 3, 2)): (D("182.58"), focus),
        ("aws-main", date(2026, 3, 3)): (D(0), focus),  # between the first and last day, nothing billed
        ("aws-main", date(2026, 3, 4)): (D("110.08"), focus),
        ("gcp-main", date(2026, 3, 2)): (D("88.49"), focus),  # cores + RAM + GPUs of the VM
        ("gcp-main", date(2026, 3, 3)): (D("88.49"), focus),
    }
    assert (report.rows, report.counted, report.skipped, report.other_providers) == (20, 10, 9, 1)
    assert [(p.provider_name, p.days, p.usd, p.rows) for p in report.providers] == [
        ("aws-main", 3, D("292.66"), 6),
        ("gcp-main", 2, D("176.98"), 4),
    ]
    assert report.days_written == 5 and report.usd == D("469.64")


def test_gzip_and_the_payer_account(providers):
    """A gzip file; rows without a linked account are matched by the billing account."""
    ProviderFactory(name="aws-payer", account_id=PAYER)
    rows = [aws("2026-03-02", "10", SubAccountId=""), aws("2026-03-02", "7")]
    report = focus_import(file=upload(focus_csv(rows), gz=True))
    assert billed() == {
        ("aws-payer", date(2026, 3, 2)): (D(10), BilledCostSource.FOCUS),
        ("aws-main", date(2026, 3, 2)): (D(7), BilledCostSource.FOCUS),
    }
    assert report.counted == 2


def test_reimporting_replaces_the_days(providers):
    BilledCost.objects.create(provider=providers["aws"], day=date(2026, 3, 2), usd=D("100"))  # from Cost Explorer
    BilledCost.objects.create(provider=providers["aws"], day=date(2026, 3, 9), usd=D("5"))
    focus_import(file=io.BytesIO(focus_csv([aws("2026-03-02", "55.04")]).encode()))
    focus_import(file=io.BytesIO(focus_csv([aws("2026-03-02", "60"), aws("2026-03-02", "1", hour="01")]).encode()))
    assert billed() == {
        ("aws-main", date(2026, 3, 2)): (D(61), BilledCostSource.FOCUS),
        ("aws-main", date(2026, 3, 9)): (D(5), BilledCostSource.COST_EXPLORER),  # not in the file: kept
    }


def test_skip_unknown_accounts_lists_them(providers):
    rows = [aws("2026-03-02", "10"), aws("2026-03-02", "99", SubAccountId="222222222222")]
    report = focus_import(file=io.BytesIO(focus_csv(rows).encode()), skip_unknown_accounts=True)
    assert report.skipped_unknown_accounts == [f"AWS account 222222222222 (billing account {PAYER}), first on line 3"]
    assert billed() == {("aws-main", date(2026, 3, 2)): (D(10), BilledCostSource.FOCUS)}


# --- bad input: a clear error naming the line, and nothing written ------------------------------------------
def refused(providers, text: str | bytes, **kwargs) -> list[str]:
    BilledCost.objects.get_or_create(provider=providers["aws"], day=date(2026, 3, 2), defaults={"usd": D("100")})
    before = billed()
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(FocusImportError) as caught:
        focus_import(file=io.BytesIO(data), **kwargs)
    assert billed() == before  # nothing half-imported
    return caught.value.errors


GOOD = aws("2026-03-03", "55.04")


def test_missing_required_columns(providers):
    columns = [c for c in COLUMNS if c not in ("EffectiveCost", "ChargePeriodStart")]
    assert refused(providers, focus_csv([GOOD], columns)) == [
        "line 1: the header lacks the FOCUS column(s) ChargePeriodStart, EffectiveCost (is this a FOCUS 1.0 export?)"
    ]


def test_a_currency_other_than_usd(providers):
    errors = refused(providers, focus_csv([GOOD, aws("2026-03-03", "50", BillingCurrency="EUR")]))
    assert errors == ["line 3: BillingCurrency is 'EUR': Fleetdeck's ledger is in USD"]


@pytest.mark.parametrize(
    "cells, message",
    [
        ({"ChargePeriodStart": "03/03/2026"}, "ChargePeriodStart/End '03/03/2026'/'2026-03-03T01:00:00.000Z' are not"),
        ({"ChargePeriodEnd": "2026-03-02T00:00:00Z"}, "ChargePeriodEnd is not after ChargePeriodStart"),
        ({"ChargePeriodEnd": "2026-04-01T00:00:00Z"}, "the charge period spans more than one UTC day"),
    ],
)
def test_bad_dates(providers, cells, message):
    (error,) = refused(providers, focus_csv([GOOD, {**GOOD, **cells}]))
    assert error.startswith(f"line 3: {message}")


@pytest.mark.parametrize("amount", ["", "12,5", "abc", "NaN", "Infinity", "1e12"])
def test_bad_amounts(providers, amount):
    errors = refused(providers, focus_csv([{**GOOD, "EffectiveCost": amount}, GOOD]))
    assert errors == [f"line 2: EffectiveCost {amount!r} is not an amount"]


def test_unknown_accounts_are_named(providers):
    rows = [GOOD, aws("2026-03-03", "9", SubAccountId="222222222222"), gcp("2026-03-03", "1", SubAccountId="other-1")]
    rows.append(aws("2026-03-03", "9", SubAccountId="222222222222", hour="02"))
    assert refused(providers, focus_csv(rows)) == [
        f"No Fleetdeck provider for AWS account 222222222222 (billing account {PAYER}), first on line 3",
        f"No Fleetdeck provider for GCP account other-1 (billing account {GCP_BILLING}), first on line 4",
    ]


def test_a_bad_charge_category(providers):
    errors = refused(providers, focus_csv([GOOD, {**GOOD, "ChargeCategory": "usage"}]))
    assert errors == ["line 3: ChargeCategory 'usage' is not one of Adjustment, Credit, Purchase, Tax, Usage"]


def test_too_big_a_file(providers):
    text = focus_csv([GOOD] * 50)
    errors = refused(providers, text, max_bytes=1000)
    assert errors == ["The file is larger than 1,000 bytes of CSV; split it (by month)."]


def test_a_gzip_bomb_stops_at_the_cap(providers):
    bomb = gzip.compress(focus_csv([GOOD]).encode() + b"\n" * 5_000_000)
    assert len(bomb) < 20_000
    assert refused(providers, bomb, max_bytes=1_000_000) == [
        "The file is larger than 1,000,000 bytes of CSV; split it (by month)."
    ]


def test_broken_gzip(providers):
    data = gzip.compress(focus_csv([GOOD] * 20).encode())
    assert refused(providers, data[: len(data) // 2]) == ["The file is not valid gzip (or it is cut short)."]


def test_not_utf8(providers):
    (error,) = refused(providers, focus_csv([GOOD]).encode() + "\n".join(["caf\xe9"] * 3).encode("latin-1"))
    assert error.endswith("the file is not UTF-8 text")


def test_a_row_with_missing_cells(providers):
    text = focus_csv([GOOD]) + "1,2,3\n"
    assert refused(providers, text) == [f"line 3: 3 cells where the header has {len(COLUMNS)}"]


def test_empty_and_irrelevant_files(providers):
    assert refused(providers, "") == ["The file is empty: no FOCUS header."]
    only_storage = focus_csv([aws("2026-03-03", "4", ServiceCategory="Storage")])
    assert refused(providers, only_storage) == [
        "The file has no compute instance usage of a known account: nothing to import."
    ]


def test_every_problem_is_listed(providers):
    rows = [{**GOOD, "EffectiveCost": "x"}, GOOD, {**GOOD, "BillingCurrency": "GBP", "ChargePeriodStart": "soon"}]
    errors = refused(providers, focus_csv(rows))
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 4"]
    assert "BillingCurrency is 'GBP'" in errors[1] and "ChargePeriodStart/End 'soon'" in errors[1]


# --- the command and the API --------------------------------------------------------------------------------
def test_management_command(providers, tmp_path, capsys):
    path = tmp_path / "focus.csv.gz"
    path.write_bytes(gzip.compress(focus_csv(AWS_MONTH).encode()))
    call_command("import_focus", str(path))
    out = capsys.readouterr().out
    assert "aws-main: 3 days (2026-03-02 – 2026-03-04), $292.66 from 6 rows" in out
    assert billed()[("aws-main", date(2026, 3, 4))] == (D("110.08"), BilledCostSource.FOCUS)
    path.write_text(focus_csv([{**GOOD, "BillingCurrency": "EUR"}]))
    with pytest.raises(CommandError, match="line 2: BillingCurrency is 'EUR'"):
        call_command("import_focus", str(path))
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_focus", str(tmp_path / "missing.csv"))


def test_api_import(api_client, providers):
    operator = api_client(Role.OPERATOR)
    response = operator.post(URL, {"file": upload(focus_csv(AWS_MONTH + GCP_DAYS), gz=True)}, format="multipart")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["counted"], data["days_written"], D(data["usd"])) == (10, 5, D("469.64"))
    assert [(p["provider_name"], D(p["usd"])) for p in data["providers"]] == [
        ("aws-main", D("292.66")),
        ("gcp-main", D("176.98")),
    ]


def test_api_bad_file_names_the_line(admin_api, providers):
    response = admin_api.post(
        URL, {"file": upload(focus_csv([GOOD, {**GOOD, "EffectiveCost": "?"}]))}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json() == {"file": ["line 3: EffectiveCost '?' is not an amount"]}
    assert not BilledCost.objects.exists()


def test_api_skip_unknown_accounts(admin_api, providers):
    rows = [GOOD, aws("2026-03-03", "9", SubAccountId="222222222222")]
    response = admin_api.post(
        URL, {"file": upload(focus_csv(rows)), "skip_unknown_accounts": "true"}, format="multipart"
    )
    assert response.status_code == 200, response.content
    assert response.json()["skipped_unknown_accounts"] == [
        f"AWS account 222222222222 (billing account {PAYER}), first on line 3"
    ]


def test_only_operators_and_admins_import(api_client, client, providers):
    text = focus_csv([GOOD])
    viewer = api_client(Role.VIEWER)
    assert viewer.post(URL, {"file": upload(text)}, format="multipart").status_code == 403
    read_only = api_client(Role.ADMIN, read_only=True)
    assert read_only.post(URL, {"file": upload(text)}, format="multipart").status_code == 403
    assert client.post(URL, {"file": upload(text)}).status_code in (401, 403)
    assert not BilledCost.objects.exists()
    assert api_client(Role.ADMIN).post(URL, {}, format="multipart").status_code == 400


def test_api_import_of_csv_text(admin_api, providers):
    response = admin_api.post(URL, {"csv": focus_csv([GOOD, aws("2026-03-03", "1", hour="01")])}, format="json")
    assert response.status_code == 200, response.content
    assert billed() == {("aws-main", date(2026, 3, 3)): (D("56.04"), BilledCostSource.FOCUS)}
    assert admin_api.post(URL, {"csv": "BilledCost\n1\n"}, format="json").json() == {
        "file": [
            "line 1: the header lacks the FOCUS column(s) BillingAccountId, BillingCurrency, ChargeCategory, "
            "ChargePeriodEnd, ChargePeriodStart, EffectiveCost, ProviderName, ServiceCategory, ServiceName "
            "(is this a FOCUS 1.0 export?)"
        ]
    }
