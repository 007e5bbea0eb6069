"""A cloud API that accepts connections and never answers fails every Fleetdeck call in bounded time.

Each cloud client Fleetdeck makes (EC2 inventory and launches, S3, Cost Explorer, the Price List, GCE launches) is
pointed at a local socket that accepts and then stays silent. The module timeouts are shortened for the test; what
is under test is that every client honours them, with bounded retries, instead of botocore's or requests' own
defaults (60 s reads, 5 legacy attempts, or no timeout at all).
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import date

import pytest
from botocore.exceptions import BotoCoreError, ClientError

import fleet.inventory.aws as aws
import fleet.inventory.gcp as gcp
from billing.costexplorer import cost_explorer_import
from billing.pricelist import pricing_client
from fleet.choices import ProviderKind
from fleet.models import Provider
from scheduler import datasets, launch

READ_TIMEOUT_S = 1
# The slowest allowed from the first connection on: every attempt's read timeout, plus retry backoff and noise.
BOUND_S = 3 * READ_TIMEOUT_S + 4


class SilentEndpoint(str):
    """The endpoint's URL, and the monotonic times at which it accepted connections."""

    accepted: list[float]


@pytest.fixture
def silent_endpoint():
    """http://127.0.0.1:<port>: accepts every connection, reads nothing, answers nothing."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
                url.accepted.append(time.monotonic())
            except TimeoutError:
                continue
            except OSError:
                return

    url = SilentEndpoint(f"http://127.0.0.1:{server.getsockname()[1]}")
    url.accepted = []
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield url
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def aws_silent(silent_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(aws, "AWS_READ_TIMEOUT_S", READ_TIMEOUT_S)
    monkeypatch.setattr(aws, "AWS_CONNECT_TIMEOUT_S", READ_TIMEOUT_S)
    monkeypatch.setattr(datasets, "S3_TIMEOUT_S", READ_TIMEOUT_S)
    return silent_endpoint


def aws_provider() -> Provider:
    return Provider(name="aws", kind=ProviderKind.AWS, credential_ref="", regions=["us-east-1"])


def elapsed(call, endpoint: SilentEndpoint) -> tuple[float, Exception | None]:
    """How long ``call`` ran from its first connection to ``endpoint`` (from its start, if it never connected),
    and what it raised. Building a client (botocore loads its service model: 7 s once on a loaded CI machine) is
    not on the wire and not what the timeouts bound."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - which error is asserted by the caller
        error = exc
    else:
        error = None
    ended = time.monotonic()
    return ended - (endpoint.accepted[0] if endpoint.accepted else started), error


AWS_CALLS = {
    "ec2-inventory": lambda: aws.AwsAdapter().discover(aws_provider(), "us-east-1"),
    "ec2-launch": lambda: launch._ec2_run(
        aws_provider(), {"region": "us-east-1", "parameters": {"ImageId": "ami-1", "MinCount": 1, "MaxCount": 1}}
    ),
    "s3-bucket-region": lambda: datasets.s3_bucket_region(bucket="fleetdeck-data"),
    "price-list": lambda: pricing_client().get_products(ServiceCode="AmazonEC2", MaxResults=1),
    "cost-explorer": lambda: cost_explorer_import(
        provider=aws_provider(), start=date(2026, 1, 1), end=date(2026, 1, 2)
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", AWS_CALLS)
def test_a_silent_aws_api_fails_each_call_in_bounded_time(aws_silent, name):
    took, error = elapsed(AWS_CALLS[name], aws_silent)
    assert aws_silent.accepted, f"{name} never connected to the endpoint"
    assert error is not None, f"{name} returned although the endpoint never answered"
    # The adapters wrap botocore's errors in their own (DiscoveryError, CostExplorerError…); the cause is botocore's.
    cause = error if isinstance(error, BotoCoreError | ClientError) else error.__cause__ or error.__context__
    assert isinstance(cause, BotoCoreError), repr(error)
    assert took < BOUND_S, f"{name} took {took:.1f} s against a silent endpoint"


def test_every_aws_client_config_bounds_connect_read_and_retries():
    config = aws.aws_client_config()
    assert config.connect_timeout == aws.AWS_CONNECT_TIMEOUT_S
    assert config.read_timeout == aws.AWS_READ_TIMEOUT_S
    assert config.retries == {"max_attempts": aws.AWS_MAX_ATTEMPTS, "mode": "standard"}
    assert pricing_client().meta.config.read_timeout == aws.AWS_READ_TIMEOUT_S


def test_a_silent_gce_api_fails_a_launch_in_bounded_time(silent_endpoint, settings, monkeypatch):
    settings.GCP_COMPUTE_ENDPOINT = silent_endpoint
    monkeypatch.setattr(gcp, "GCP_TIMEOUT_S", READ_TIMEOUT_S)
    provider = Provider(name="gcp", kind=ProviderKind.GCP, credential_ref="adc")
    request = {"project": "fleetdeck-demo", "zone": "us-east1-b", "instances": [{"name": "job-1"}]}
    took, error = elapsed(lambda: launch._gce_insert(provider, request), silent_endpoint)
    assert silent_endpoint.accepted, "the GCE insert never connected to the endpoint"
    assert error is not None
    assert took < BOUND_S, f"a GCE insert took {took:.1f} s against a silent endpoint"
