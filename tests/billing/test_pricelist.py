"""billing/pricelist.py: AWS Price List refresh through a real boto3 client, stubbed at botocore's boundary."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber
from django.core.management import CommandError, call_command

from billing.catalogue import catalogue_load
from billing.choices import PriceSource
from billing.models import InstancePrice
from billing.pricelist import PriceListError, price_list_filters, price_list_refresh
from billing.rates import PriceBook
from billing.tasks.prices import prices_refresh

pytestmark = pytest.mark.django_db
P5_KEY = {"provider_kind": "aws", "region": "us-east-1", "instance_type": "p5.48xlarge"}


@pytest.fixture
def example_output(shared_fixtures) -> dict:
    """AWS's own GetProducts example output (an EBS storage item), as botocore ships it."""
    examples = json.loads((shared_fixtures / "aws/botocore_pricing_examples-1.json").read_text())
    return examples["examples"]["GetProducts"][0]["output"]


def gpu_item(
    example_output: dict,
    *,
    instance_type="p5.48xlarge",
    usd="55.0400000000",
    gpus="8",
    effective="2025-06-01T00:00:00Z",
    sku="GPUSKU123EXAMPL",
) -> str:
    """A compute item built in exactly the example's format: the same keys, nesting and string encodings."""
    item = json.loads(example_output["PriceList"][0])
    old_sku = item["product"]["sku"]
    item["product"]["productFamily"] = "Compute Instance"
    item["product"]["sku"] = sku
    item["product"]["attributes"] = {
        "servicecode": "AmazonEC2",
        "instanceType": instance_type,
        "regionCode": "us-east-1",
        "location": "US East (N. Virginia)",
        "locationType": "AWS Region",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "gpu": gpus,
        "gpuMemory": "640 GB",
        "usagetype": f"BoxUsage:{instance_type}",
        "operation": "RunInstances",
        "servicename": "Amazon Elastic Compute Cloud",
    }
    ((term_key, term),) = item["terms"]["OnDemand"].items()
    ((dim_key, dim),) = term["priceDimensions"].items()
    dim.update(
        unit="Hrs",
        description=f"${usd} per On Demand Linux {instance_type} Instance Hour",
        rateCode=dim_key.replace(old_sku, sku),
        pricePerUnit={"USD": usd} if usd is not None else {"CNY": "1.0"},
    )
    term.update(sku=sku, effectiveDate=effective, priceDimensions={dim_key.replace(old_sku, sku): dim})
    item["terms"]["OnDemand"] = {term_key.replace(old_sku, sku): term}
    return json.dumps(item)


@pytest.fixture
def client():
    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client
        stubber.assert_no_pending_responses()


def expect(client, instance_type, price_list, *, next_token=None, token=None):
    params = {
        "ServiceCode": "AmazonEC2",
        "Filters": price_list_filters(region="us-east-1", instance_type=instance_type),
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
    }
    if token:
        params["NextToken"] = token
    response = {"FormatVersion": "aws_v1", "PriceList": price_list}
    if next_token:
        response["NextToken"] = next_token
    client.stubber.add_response("get_products", response, params)


def test_filters_are_the_term_matches_aws_documents():
    filters = price_list_filters(region="us-east-1", instance_type="p5.48xlarge")
    assert {f["Field"]: f["Value"] for f in filters} == {
        "instanceType": "p5.48xlarge",
        "regionCode": "us-east-1",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    assert {f["Type"] for f in filters} == {"TERM_MATCH"}


def test_the_real_example_item_is_skipped_with_a_reason_and_a_gpu_item_is_stored(client, example_output):
    catalogue_load()
    expect(client, "p5.48xlarge", [example_output["PriceList"][0], gpu_item(example_output, usd="54.0000000000")])
    report = price_list_refresh(region="us-east-1", instance_types=["p5.48xlarge"], client=client)
    assert report.skipped == ["p5.48xlarge: sku WQGC34PB2AWS8R4U: not a compute instance (productFamily 'Storage')"]
    assert (report.created, report.updated, report.unchanged) == (1, 0, 0)
    row = InstancePrice.objects.get(source=PriceSource.AWS_PRICE_LIST)
    assert (row.instance_type, row.region, row.gpu_model, row.gpu_count) == ("p5.48xlarge", "us-east-1", "H100", 8)
    assert row.on_demand_usd_per_h == Decimal("54")
    assert row.effective_from == date(2025, 6, 1)
    # The Price List has no spot prices: the catalogue row's spot figure is carried over, and the note says so.
    assert row.spot_usd_per_h == Decimal("10.2397")
    assert "spot carried over from the catalogue row of 2025-06-01" in row.note
    # On its day it is the price in force (fresher than the shipped catalogue of the same day).
    assert PriceBook.load(day=date(2025, 6, 1)).instance_usd_per_h(**P5_KEY, spot=False) == Decimal("54")


def test_pagination_follows_next_token_and_a_rerun_changes_nothing(client, example_output):
    expect(client, "g5.xlarge", [example_output["PriceList"][0]], next_token="page-2")
    expect(
        client,
        "g5.xlarge",
        [gpu_item(example_output, instance_type="g5.xlarge", usd="1.0060000000", gpus="1")],
        token="page-2",
    )
    expect(client, "p5.48xlarge", [gpu_item(example_output)])
    report = price_list_refresh(region="us-east-1", instance_types=["p5.48xlarge", "g5.xlarge"], client=client)
    assert report.created == 2
    assert report.instance_types == ["g5.xlarge", "p5.48xlarge"]
    g5 = InstancePrice.objects.get(instance_type="g5.xlarge")
    assert (g5.on_demand_usd_per_h, g5.spot_usd_per_h, g5.gpu_model) == (Decimal("1.006"), None, "A10G")

    expect(client, "p5.48xlarge", [gpu_item(example_output)])
    again = price_list_refresh(region="us-east-1", instance_types=["p5.48xlarge"], client=client)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    expect(client, "p5.48xlarge", [gpu_item(example_output, usd="50.0000000000")])
    changed = price_list_refresh(region="us-east-1", instance_types=["p5.48xlarge"], client=client)
    assert (changed.created, changed.updated) == (0, 1)
    assert InstancePrice.objects.get(instance_type="p5.48xlarge").on_demand_usd_per_h == Decimal("50")


def test_malformed_entry_missing_usd_and_unknown_type_are_skipped_not_crashing(client, example_output):
    expect(
        client,
        "p5.48xlarge",
        [
            '{"product": {"productFamily": "Compute Instance"',  # cut short
            "[]",
            gpu_item(example_output, usd=None, sku="NOUSDSKU"),
            gpu_item(example_output, gpus="4", sku="FOURGPUS"),
        ],
    )
    expect(client, "x9.mystery", [gpu_item(example_output, instance_type="x9.mystery")])
    report = price_list_refresh(region="us-east-1", instance_types=["p5.48xlarge", "x9.mystery"], client=client)
    assert report.created == 0
    assert InstancePrice.objects.count() == 0
    text = "\n".join(report.skipped)
    assert "p5.48xlarge: malformed PriceList entry" in text
    assert "p5.48xlarge: malformed PriceList entry (not an object)" in text
    assert "p5.48xlarge: sku NOUSDSKU: no on-demand USD price" in text
    assert "p5.48xlarge: the Price List says 4 GPUs, the catalogue 8" in text
    assert "x9.mystery: GPU model unknown (not in fleet.catalog, never priced)" in text


def test_access_denied_is_a_clear_error_and_nothing_is_half_written(client, example_output):
    expect(client, "g5.xlarge", [gpu_item(example_output, instance_type="g5.xlarge", usd="1.0060000000", gpus="1")])
    client.stubber.add_client_error(
        "get_products",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: pricing:GetProducts",
        http_status_code=400,
    )
    with pytest.raises(PriceListError) as caught:
        price_list_refresh(region="us-east-1", instance_types=["g5.xlarge", "p5.48xlarge"], client=client)
    assert str(caught.value) == (
        "AWS Price List API refused get_products for p5.48xlarge in us-east-1: "
        "AccessDeniedException: User is not authorized to perform: pricing:GetProducts"
    )
    # g5.xlarge had been fetched, but nothing is written until every type is.
    assert InstancePrice.objects.count() == 0


def test_refresh_prices_command_and_task_turn_refusals_into_clear_messages(monkeypatch, caplog, example_output):
    """The command and the task build their own client; point it at a stubbed one that refuses."""
    refused = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stubber = Stubber(refused)
    for _ in range(2):
        stubber.add_client_error("get_products", service_error_code="AccessDeniedException", service_message="no")
    stubber.activate()
    monkeypatch.setattr("billing.pricelist.pricing_client", lambda: refused)
    with pytest.raises(CommandError, match="refused get_products for p5.48xlarge in us-east-1: AccessDenied"):
        call_command("refresh_prices", "--region", "us-east-1", "--instance-type", "p5.48xlarge")
    prices_refresh.apply(kwargs={"regions": ["us-east-1"]}).get()
    assert "AWS price refresh for us-east-1 failed" in caplog.text
    stubber.assert_no_pending_responses()


def test_refresh_prices_command_prints_counts(monkeypatch, capsys, client, example_output):
    expect(client, "p5.48xlarge", [example_output["PriceList"][0], gpu_item(example_output)])
    monkeypatch.setattr("billing.pricelist.pricing_client", lambda: client)
    call_command("refresh_prices", "--region", "us-east-1", "--instance-type", "p5.48xlarge")
    out = capsys.readouterr().out
    assert "us-east-1: 1 created, 0 updated, 0 unchanged (1 instance types asked)" in out
    assert "skipped: p5.48xlarge: sku WQGC34PB2AWS8R4U: not a compute instance" in out


def test_beat_runs_the_refresh_weekly_on_the_billing_queue():
    from django_celery_beat.models import PeriodicTask

    from billing.schedules import billing_schedules_sync

    billing_schedules_sync()
    task = PeriodicTask.objects.get(task="billing.tasks.prices_refresh")
    assert task.queue == "billing"
    assert task.interval.every == 7 * 24 * 3600
