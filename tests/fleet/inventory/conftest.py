"""Clouds at the wire: moto for EC2 (in-process), devtools.emulators.gce for Compute Engine (a local HTTP server)."""

from __future__ import annotations

import boto3
import moto.settings
import pytest
from moto import mock_aws

from devtools.emulators.gce import GceEmulator
from fleet.inventory import gcp

IMAGE_ID = "ami-0123456789abcdef0"  # moto does not check images once its default AMIs are not loaded


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """moto's EC2, reached with fake credentials; unknown instance types are refused as AWS refuses them."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-for-moto")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # A credentials file with one profile, so profile:/env: references can be exercised; nothing else leaks in.
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[fleetdeck]\naws_access_key_id = AKIAFAKEPROFILEFAKE1\naws_secret_access_key = fake\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
    monkeypatch.setattr(moto.settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION", True)
    # Loading moto's thousand-odd default AMIs costs seconds per region; the inventory never reads images.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield EC2Fleet()


class EC2Fleet:
    """Launch and change instances in moto the way a person would in the console."""

    def __init__(self) -> None:
        self._clients: dict = {}

    def client(self, region: str):
        if region not in self._clients:
            self._clients[region] = boto3.client("ec2", region_name=region)
        return self._clients[region]

    def launch(
        self,
        region: str,
        instance_type: str,
        *,
        tags: dict[str, str] | None = None,
        spot: bool = False,
        zone: str | None = None,
    ) -> str:
        ec2 = self.client(region)
        kwargs = {}
        if tags:
            kwargs["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ]
        if spot:
            kwargs["InstanceMarketOptions"] = {"MarketType": "spot"}
        if zone:
            kwargs["Placement"] = {"AvailabilityZone": zone}
        reply = ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, InstanceType=instance_type, **kwargs)
        return reply["Instances"][0]["InstanceId"]

    def stop(self, region: str, instance_id: str) -> None:
        self.client(region).stop_instances(InstanceIds=[instance_id])

    def terminate(self, region: str, instance_id: str) -> None:
        self.client(region).terminate_instances(InstanceIds=[instance_id])

    def tag(self, region: str, instance_id: str, **tags: str) -> None:
        self.client(region).create_tags(Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def forget(self, region: str, instance_id: str) -> None:
        """Make an instance vanish from DescribeInstances, as AWS does about an hour after termination."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
        for reservation_id, reservation in list(backend.reservations.items()):
            if any(instance.id == instance_id for instance in reservation.instances):
                del backend.reservations[reservation_id]
                return
        raise KeyError(instance_id)


@pytest.fixture
def gce(settings, monkeypatch):
    """The Compute Engine emulator, with GCP_COMPUTE_ENDPOINT pointing at it; quick retries for failure tests."""
    with GceEmulator() as emulator:
        settings.GCP_COMPUTE_ENDPOINT = emulator.url
        monkeypatch.setattr(gcp, "GCP_RETRY_DEADLINE_S", 2)
        monkeypatch.setattr(gcp, "GCP_RETRY_INITIAL_S", 0.05)
        monkeypatch.setattr(gcp, "GCP_RETRY_MAXIMUM_S", 0.2)
        yield emulator
