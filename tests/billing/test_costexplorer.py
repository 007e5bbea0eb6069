"""AWS Cost Explorer import (billing/costexplorer.py) through boto3 against moto, seeded with known results."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import boto3
import pytest
import requests
from django.core.management import CommandError, call_command
from moto import mock_aws

from billing.choices import EgressCause, LocationClass
from billing.costexplorer import CostExplorerError, cost_explorer_import, is_instance_usage, transfer_route
from billing.models import BilledCost, EgressRecord
from billing.tasks.ledger import costs_import, costs_import_provider
from tests.factories import OnPremProviderFactory, ProviderFactory

pytestmark = pytest.mark.django_db

SEED_URL = "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results"


@pytest.fixture
def ce(monkeypatch):
    """moto's Cost Explorer with fake credentials; ``seed(*pages)`` queues the answers of the next calls."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-for-moto")
    with mock_aws():

        def seed(*pages: dict) -> None:
            reply = requests.post(SEED_URL, json={"results": list(pages)}, timeout=5)
            assert reply.status_code == 201

        yield seed


def group(usage_type: str, usd: str | None, quantity: str = "0", unit: str = "GB", cost_unit: str = "USD") -> dict:
    cost = {"Unit": cost_unit} if usd is None else {"Amount": usd, "Unit": cost_unit}
    return {
        "Keys": [usage_type],
        "Metrics": {"UnblendedCost": cost, "UsageQuantity": {"Amount": quantity, "Unit": unit}},
    }


def day_result(day: str, end: str, *groups: dict) -> dict:
    return {"TimePeriod": {"Start": day, "End": end}, "Total": {}, "Groups": list(groups), "Estimated": False}


PAGE_1 = {
    "ResultsByTime": [
        day_result(
            "2026-03-01",
            "2026-03-02",
            group("USE1-BoxUsage:p5.48xlarge", "2359.68", "24", unit="Hrs"),
            group("USE1-SpotUsage:g5.xlarge", "3.02", "10", unit="Hrs"),
            # Not instance hours: left out of BilledCost (the ledger estimates instances only).
            group("EBS:VolumeUsage.gp3", "12.34", "150", unit="GB-Mo"),
            group("TimedStorage-ByteHrs", "0.77", "33", unit="GB-Mo"),
            group("Dollar", "100.00", "1", unit="N/A"),  # AWS Support
            # 1,500 GB out to the internet at $0.09/GB = $135.00
            group("DataTransfer-Out-Bytes", "135.00", "1500"),
            # 200 GB from us-east-1 to us-west-2 at $0.02/GB = $4.00
            group("USE1-USW2-AWS-Out-Bytes", "4.00", "200"),
        ),
    ],
    "NextPageToken": "page-2",
    "DimensionValueAttributes": [],
}
PAGE_2 = {
    "ResultsByTime": [
        day_result(
            "2026-03-02",
            "2026-03-03",
            group("USE1-BoxUsage:p5.48xlarge", "1320.96", "24", unit="Hrs"),
            group("EUC1-DataTransfer-Regional-Bytes", "0.50", "50"),
            group("USE1-EU-AWS-In-Bytes", "0", "10.5"),
        ),
    ],
    "DimensionValueAttributes": [],
}


@pytest.fixture
def provider(db):
    return ProviderFactory(name="aws-prod", credential_ref="")


def test_import_writes_daily_bills_and_data_transfer_across_pages(ce, provider):
    ce(PAGE_1, PAGE_2)

    report = cost_explorer_import(provider=provider, start=date(2026, 3, 1), end=date(2026, 3, 3))

    assert (report.pages, report.days, report.egress_records) == (2, 2, 4)
    # EC2 instance usage only: 2359.68 + 3.02 (spot) = 2362.70 (no EBS, S3, support, data transfer); 1320.96
    assert dict(BilledCost.objects.values_list("day", "usd")) == {
        date(2026, 3, 1): Decimal("2362.70"),
        date(2026, 3, 2): Decimal("1320.96"),
    }
    assert report.billed_usd == Decimal("3683.66")
    records = {r.external_key.split(":", 2)[2]: r for r in EgressRecord.objects.filter(cause=EgressCause.COST_EXPLORER)}
    out = records["DataTransfer-Out-Bytes"]
    assert (out.source, out.destination, out.location_class, out.bytes, out.usd) == (
        "aws:us-east-1",
        "internet",
        LocationClass.INTERNET,
        1500 * 10**9,
        Decimal("135"),
    )
    assert out.occurred_at == datetime(2026, 3, 1, tzinfo=UTC) and not out.planned
    cross = records["USE1-USW2-AWS-Out-Bytes"]
    assert (cross.source, cross.destination, cross.location_class, cross.bytes) == (
        "aws:us-east-1",
        "aws:us-west-2",
        LocationClass.SAME_CONTINENT,
        200 * 10**9,
    )
    inbound = records["USE1-EU-AWS-In-Bytes"]
    assert (inbound.source, inbound.destination, inbound.location_class, inbound.bytes) == (
        "aws:eu-west-1",
        "aws:us-east-1",
        LocationClass.OTHER_CONTINENT,
        10_500_000_000,
    )
    assert records["EUC1-DataTransfer-Regional-Bytes"].location_class == LocationClass.SAME_REGION


def test_reimport_updates_instead_of_duplicating(ce, provider):
    ce(PAGE_1, PAGE_2)
    cost_explorer_import(provider=provider, start=date(2026, 3, 1), end=date(2026, 3, 3))
    # moto answers the same request with the same pages again; the rows are updated in place.
    cost_explorer_import(provider=provider, start=date(2026, 3, 1), end=date(2026, 3, 3))
    assert BilledCost.objects.count() == 2
    assert EgressRecord.objects.count() == 4


@pytest.mark.parametrize(
    ("usage_type", "instance"),
    [
        ("BoxUsage:p5.48xlarge", True),
        ("USW2-BoxUsage:g5.xlarge", True),
        ("EUC1-SpotUsage:p4d.24xlarge", True),
        ("DedicatedUsage:p3.16xlarge", True),
        ("USE2-HostUsage:p4d", True),
        ("EBS:VolumeUsage.gp3", False),
        ("USE1-EBS:SnapshotUsage", False),
        ("DataTransfer-Out-Bytes", False),
        ("TimedStorage-ByteHrs", False),
        ("USE1-NatGateway-Hours", False),
    ],
)
def test_only_ec2_instance_usage_types_are_billed_cost(usage_type, instance):
    assert is_instance_usage(usage_type) is instance


@pytest.mark.parametrize(
    ("bad_group", "message"),
    [
        (group("USE1-BoxUsage:p5.48xlarge", None), "UnblendedCost has no Amount"),
        (group("USE1-BoxUsage:p5.48xlarge", "12", cost_unit="EUR"), "cost unit 'EUR' is not USD"),
        (group("DataTransfer-Out-Bytes", "1.00", "3", unit="Parsecs"), "usage unit 'Parsecs'"),
        (group("DataTransfer-Out-Bytes", "lots"), "Amount 'lots' is not a number"),
        ({"Keys": [], "Metrics": {}}, "without its usage type"),
    ],
)
def test_malformed_answers_are_refused_whole(ce, provider, bad_group, message):
    good = group("USE1-BoxUsage:p5.48xlarge", "10.00", "1", unit="Hrs")
    ce({"ResultsByTime": [day_result("2026-03-01", "2026-03-02", good, bad_group)]})
    with pytest.raises(CostExplorerError, match=message):
        cost_explorer_import(provider=provider, start=date(2026, 3, 1), end=date(2026, 3, 2))
    assert not BilledCost.objects.exists() and not EgressRecord.objects.exists()


def test_a_result_without_its_day_is_refused(ce, provider):
    ce({"ResultsByTime": [{"Groups": [], "Total": {}}]})
    with pytest.raises(CostExplorerError, match="TimePeriod"):
        cost_explorer_import(provider=provider, start=date(2026, 3, 1), end=date(2026, 3, 2))


def test_only_aws_accounts_and_real_periods():
    with pytest.raises(CostExplorerError, match="not an AWS account"):
        cost_explorer_import(provider=OnPremProviderFactory(), start=date(2026, 3, 1), end=date(2026, 3, 2))
    with pytest.raises(CostExplorerError, match="empty"):
        cost_explorer_import(provider=ProviderFactory(), start=date(2026, 3, 2), end=date(2026, 3, 2))


@pytest.mark.parametrize(
    ("usage_type", "route"),
    [
        ("DataTransfer-Out-Bytes", ("aws:us-east-1", "internet", "internet")),
        ("APN1-DataTransfer-Out-Bytes", ("aws:ap-northeast-1", "internet", "internet")),
        ("USW2-DataTransfer-In-Bytes", ("internet", "aws:us-west-2", "internet")),
        ("USE1-EUC1-AWS-Out-Bytes", ("aws:us-east-1", "aws:eu-central-1", "other-continent")),
        ("USW2-USE1-AWS-In-Bytes", ("aws:us-east-1", "aws:us-west-2", "same-continent")),
        ("USE2-DataTransfer-Regional-Bytes", ("aws:us-east-2", "aws:us-east-2", "same-region")),
    ],
)
def test_transfer_routes_from_usage_types(usage_type, route):
    got = transfer_route(usage_type)
    assert (got.source, got.destination, got.location_class) == route


def test_costs_import_task_covers_enabled_aws_providers(ce, provider, django_capture_on_commit_callbacks):
    ProviderFactory(enabled=False)
    OnPremProviderFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        assert costs_import() == 1
    assert len(callbacks) == 1
    ce(PAGE_1)
    result = costs_import_provider(provider.pk)
    assert result["provider"] == "aws-prod" and result["pages"] >= 1


def test_import_costs_command(ce, provider, capsys):
    ce(PAGE_1, PAGE_2)
    call_command("import_costs", "--provider", "aws-prod", "--from", "2026-03-01", "--to", "2026-03-02")
    assert "aws-prod: 2 days, $3,683.66 billed, 4 data-transfer records (2 pages)" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No AWS provider named: nope"):
        call_command("import_costs", "--provider", "nope", "--from", "2026-03-01", "--to", "2026-03-02")
    with pytest.raises(CommandError, match="is not a date"):
        call_command("import_costs", "--from", "March", "--to", "2026-03-02")


def test_client_is_the_real_boto3_ce(ce, provider):
    # The import builds its own client from the provider's credential reference; a given client is used as is.
    ce(PAGE_2)
    report = cost_explorer_import(
        provider=provider, start=date(2026, 3, 2), end=date(2026, 3, 3), client=boto3.client("ce", "us-east-1")
    )
    assert report.days == 1
