"""Dataset locations: an S3 bucket's region from GetBucketLocation (moto), gs:// needing its region, on-prem sites."""

from __future__ import annotations

import boto3
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from scheduler.datasets import TRANSFER_BYTES_PER_S, TariffNetwork, dataset_place_resolve, s3_bucket_region
from tests.factories import OnPremSiteFactory, ProviderFactory, SiteFactory

pytestmark = pytest.mark.django_db


def make_bucket(name: str, region: str) -> None:
    client = boto3.client("s3", region_name=region)
    if region == "us-east-1":
        client.create_bucket(Bucket=name)  # us-east-1 takes no LocationConstraint, and reports None
    else:
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2"])
def test_s3_bucket_region_comes_from_get_bucket_location(aws, region):
    make_bucket(f"data-{region}", region)
    assert s3_bucket_region(bucket=f"data-{region}") == region


def test_s3_uri_resolves_to_the_bucket_region_with_the_provider_credentials(aws):
    ProviderFactory(credential_ref="profile:fleetdeck")
    make_bucket("corpus", "us-west-2")
    place = dataset_place_resolve(uri="s3://corpus/2tb/part-0000")
    assert (place.provider_kind, place.region, place.site) == ("aws", "us-west-2", None)


def test_given_region_is_not_looked_up(aws):
    place = dataset_place_resolve(uri="s3://no-such-bucket/x", region="eu-central-1")
    assert place.region == "eu-central-1"


def test_missing_bucket_is_a_region_field_error(aws):
    with pytest.raises(ValidationError) as raised:
        dataset_place_resolve(uri="s3://no-such-bucket/x")
    assert "give the region" in raised.value.message_dict["region"][0]


def test_gs_needs_its_region():
    with pytest.raises(ValidationError) as raised:
        dataset_place_resolve(uri="gs://imagenet/train")
    assert "region" in raised.value.message_dict
    assert dataset_place_resolve(uri="gs://imagenet/train", region="us-central1").provider_kind == "gcp"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"uri": "http://bucket/x"}, "uri"),
        ({"uri": "s3:/bucket"}, "uri"),
        ({"uri": ""}, "site"),
        ({"uri": "gs://b/x", "region": "us-central1", "site": "onprem"}, "site"),
        ({"uri": "", "site": "cloud"}, "site"),
        ({"uri": "", "site": "onprem", "region": "us-east-1"}, "region"),
    ],
)
def test_bad_locations_are_field_errors(kwargs, field):
    sites = {"onprem": OnPremSiteFactory, "cloud": SiteFactory}
    if "site" in kwargs:
        kwargs["site"] = sites[kwargs["site"]]()
    with pytest.raises(ValidationError) as raised:
        dataset_place_resolve(**kwargs)
    assert field in raised.value.message_dict


def test_api_create_looks_up_the_bucket(aws, admin_api):
    make_bucket("scans", "eu-west-1")
    payload = {"name": "scans", "uri": "s3://scans/2025/", "size_bytes": 5 * 10**11}
    response = admin_api.post(reverse("api:dataset-list"), payload, format="json")
    assert response.status_code == 201, response.content
    assert (response.data["region"], response.data["location"]) == ("eu-west-1", "aws:eu-west-1")


def test_network_prices_moves_with_the_tariff(scenario):
    from billing.rates import EgressTariff
    from tests.scheduler.conftest import PRICE_DAY, TB2

    network = TariffNetwork(tariff=EgressTariff.load(day=PRICE_DAY))
    assert str(network.egress_usd("aws:us-east-1", "aws:us-west-2", TB2)) == "40.000000"
    assert str(network.egress_usd("aws:us-east-1", "gcp:us-central1", TB2)) == "180.000000"
    assert network.egress_usd("aws:us-east-1", "aws:us-east-1", TB2) == 0
    assert network.transfer_s("aws:us-east-1", "aws:us-west-2", TB2) == TB2 / TRANSFER_BYTES_PER_S == 1600
    assert network.transfer_s("gcp:us-central1", "gcp:us-central1", TB2) == 0
