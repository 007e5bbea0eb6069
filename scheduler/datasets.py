"""Where datasets live (a bucket's region or an on-prem site) and what moving them costs in time and money."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ValidationError

from billing.rates import EgressRateMissing, EgressTariff, Location
from fleet.choices import ProviderKind
from fleet.inventory.aws import aws_client_config, session_for
from fleet.inventory.base import DiscoveryError
from fleet.models import Provider, Site
from scheduler.optimizer.model import MoveUnpriceable

URI_SCHEMES = {"s3": ProviderKind.AWS, "gs": ProviderKind.GCP}
# GetBucketLocation answers None (or "") for buckets in us-east-1, and "EU" for old eu-west-1 buckets.
S3_LEGACY_REGIONS = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}
S3_TIMEOUT_S = 10
# Sustained throughput assumed for a bulk copy between two locations (10 Gbit/s); it only ranks candidates
# by how long their data takes to arrive, it never changes a price.
TRANSFER_BYTES_PER_S = 1.25e9


@dataclass(frozen=True)
class DatasetPlace:
    """A dataset's resolved location: provider kind, cloud region (or empty) and on-prem site (or None)."""

    provider_kind: str
    region: str
    site: Site | None


def uri_parse(uri: str) -> tuple[str, str]:
    """``(scheme, bucket)`` of an ``s3://`` or ``gs://`` URI; raises ValidationError on ``uri`` otherwise."""
    scheme, sep, rest = uri.partition("://")
    bucket = rest.split("/", 1)[0]
    if not sep or scheme not in URI_SCHEMES or not bucket:
        raise ValidationError({"uri": "Use s3://bucket/prefix or gs://bucket/prefix (or leave empty for on-prem)."})
    return scheme, bucket


def s3_bucket_region(*, bucket: str, provider: Provider | None = None) -> str:
    """The AWS region of an S3 bucket (GetBucketLocation), with the credentials of ``provider`` if given."""
    session = session_for(provider.credential_ref if provider else "")
    config = aws_client_config(connect_timeout=S3_TIMEOUT_S, read_timeout=S3_TIMEOUT_S, retries={"max_attempts": 2})
    client = session.client("s3", region_name="us-east-1", config=config)
    constraint = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return S3_LEGACY_REGIONS.get(constraint, constraint)


def dataset_place_resolve(*, uri: str, region: str = "", site: Site | None = None) -> DatasetPlace:
    """Resolve where a dataset lives from its URI (and region), or its on-prem site; field-level errors.

    ``s3://``: the region given, else the bucket's region asked from S3. ``gs://``: the region must be given
    (Fleetdeck has no Cloud Storage client). No URI: an on-prem site is required.
    """
    uri, region = (uri or "").strip(), (region or "").strip()
    if not uri:
        if site is None:
            raise ValidationError({"site": "Give a bucket URI (s3:// or gs://) or the on-prem site holding the data."})
        if site.provider.kind != ProviderKind.ONPREM:
            raise ValidationError({"site": "Only on-prem sites hold datasets without a URI; give the bucket URI."})
        if region:
            raise ValidationError({"region": "On-prem datasets are located by their site; leave the region empty."})
        return DatasetPlace(provider_kind=ProviderKind.ONPREM, region="", site=site)
    scheme, bucket = uri_parse(uri)
    if site is not None:
        raise ValidationError({"site": "A bucket dataset has no on-prem site; leave it empty."})
    kind = URI_SCHEMES[scheme]
    if not region and kind == ProviderKind.GCP:
        raise ValidationError({"region": "Give the region of a gs:// bucket (e.g. us-central1); it is not looked up."})
    if not region:
        provider = Provider.objects.filter(kind=ProviderKind.AWS, enabled=True).order_by("name").first()
        try:
            region = s3_bucket_region(bucket=bucket, provider=provider)
        except (BotoCoreError, ClientError, DiscoveryError) as exc:
            raise ValidationError(
                {"region": f"Could not look up the region of bucket {bucket!r} ({exc}); give the region."}
            ) from exc
    return DatasetPlace(provider_kind=kind, region=region, site=None)


def dataset_location(dataset) -> Location:
    """The billing Location of a dataset (its site's for on-prem data, else its bucket's region)."""
    if dataset.site_id is not None:
        return Location.from_site(dataset.site)
    return Location(provider_kind=dataset.provider_kind, region=dataset.region)


class TariffNetwork:
    """The optimiser's Network: egress $ from the EgressTariff in force, time from a nominal bandwidth.

    Location keys of on-prem sites need their site (its continent); cloud keys are rebuilt from kind and region.
    A route without a rate raises EgressRateMissing, or with ``unpriceable_infeasible`` the optimiser's
    MoveUnpriceable (placement: only the candidates needing that move are dropped).
    """

    def __init__(
        self,
        *,
        tariff: EgressTariff,
        locations: dict[str, Location] | None = None,
        unpriceable_infeasible: bool = False,
    ) -> None:
        self.tariff = tariff
        self.locations = dict(locations or {})
        self.unpriceable_infeasible = unpriceable_infeasible

    def location(self, key: str) -> Location:
        """The Location of a key such as ``aws:us-east-1`` or ``onprem:dc-1``."""
        known = self.locations.get(key)
        if known is None:
            kind, _, region = key.partition(":")
            known = self.locations[key] = Location(provider_kind=kind, region=region)
        return known

    def egress_usd(self, src: str, dst: str, size_bytes: int) -> Decimal:
        """What moving ``size_bytes`` from ``src`` to ``dst`` costs (charged by the source)."""
        if src == dst:
            return Decimal(0)
        try:
            return self.tariff.usd(self.location(src), self.location(dst), size_bytes)
        except EgressRateMissing as exc:
            if self.unpriceable_infeasible:
                raise MoveUnpriceable(str(exc)) from exc
            raise

    def transfer_s(self, src: str, dst: str, size_bytes: int) -> float:
        """Seconds to copy ``size_bytes`` from ``src`` to ``dst`` at TRANSFER_BYTES_PER_S."""
        return 0.0 if src == dst else size_bytes / TRANSFER_BYTES_PER_S
