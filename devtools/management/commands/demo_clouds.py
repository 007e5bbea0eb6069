"""``manage.py demo_clouds``: local AWS and GCP for the demo, reached through the real inventory adapters.

Serves moto's EC2 (ThreadedMotoServer) and the Compute REST emulator, puts a few GPU instances in each, points
the demo providers at them (regions, agent URL on the fleet simulator), runs one inventory sync so the nodes
appear at once, then keeps serving for beat's periodic syncs. The worker finds the endpoints through
AWS_ENDPOINT_URL and GCP_COMPUTE_ENDPOINT (set by ``make demo``).
"""

import os
import time

import boto3
from django.core.management.base import BaseCommand, CommandError

from devtools.demo.fleet import DEMO_SIMULATOR_URL
from devtools.emulators.gce import DEMO_PROJECT, GceEmulator
from fleet.inventory.sync import inventory_sync
from fleet.models import Provider

AWS_REGIONS = ["us-east-1", "us-west-2"]
# (region, instance type, tags, spot): a small, plausible EC2 GPU fleet.
EC2_INSTANCES = [
    ("us-east-1", "p5.48xlarge", {"Name": "aws-llm-trainer-0", "team": "research", "project": "llm-pretrain"}, False),
    ("us-east-1", "p4d.24xlarge", {"Name": "aws-vision-0", "team": "research", "project": "vision"}, False),
    ("us-east-1", "g5.xlarge", {"Name": "aws-embed-0", "team": "inference", "project": "batch-embed"}, True),
    ("us-east-1", "g6.xlarge", {"Name": "aws-chat-0", "team": "inference", "project": "chat-serving"}, False),
    ("us-west-2", "g5.12xlarge", {"Name": "aws-ci-0", "team": "platform", "project": "ci-gpu"}, True),
    ("us-west-2", "g4dn.xlarge", {"Name": "aws-etl-0", "team": "data", "project": "feature-etl"}, False),
]
IMAGE_ID = "ami-12c6146b"  # an image moto ships


class Command(BaseCommand):
    help = "Serve emulated AWS EC2 and GCP Compute for the demo, seed them, sync the demo providers, keep serving."

    def add_arguments(self, parser):
        parser.add_argument("--aws-port", type=int, default=9600)
        parser.add_argument("--gcp-port", type=int, default=9700)

    def handle(self, *args, aws_port, gcp_port, **options):
        from moto.server import ThreadedMotoServer

        aws_url = os.environ.get("AWS_ENDPOINT_URL", "")
        gcp_url = os.environ.get("GCP_COMPUTE_ENDPOINT", "")
        if aws_url != f"http://127.0.0.1:{aws_port}" or gcp_url != f"http://127.0.0.1:{gcp_port}":
            raise CommandError(
                f"Set AWS_ENDPOINT_URL=http://127.0.0.1:{aws_port} and "
                f"GCP_COMPUTE_ENDPOINT=http://127.0.0.1:{gcp_port} (make demo does) "
                "so the worker talks to these emulators, never to the real clouds."
            )
        aws = ThreadedMotoServer(ip_address="127.0.0.1", port=aws_port, verbose=False)
        aws.start()
        gcp = GceEmulator(port=gcp_port).start()
        gcp.seed_demo(DEMO_PROJECT)
        for region, instance_type, tags, spot in EC2_INSTANCES:
            ec2 = boto3.client("ec2", region_name=region, endpoint_url=aws_url)
            market = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
            ec2.run_instances(
                ImageId=IMAGE_ID,
                MinCount=1,
                MaxCount=1,
                InstanceType=instance_type,
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
                ],
                **market,
            )
        template = f"{DEMO_SIMULATOR_URL}/nodes/{{name}}/metrics"
        for provider in Provider.objects.filter(name__in=["aws-prod", "gcp-ml"]):
            provider.regions = AWS_REGIONS if provider.kind == "aws" else []
            provider.credential_ref = ""
            provider.agent_url_template = template
            provider.agent_token_ref = "env:FLEETDECK_AGENT_TOKEN"  # noqa: S105 - a reference, not a token
            provider.save()
            report = inventory_sync(provider=provider, force=True)
            scopes = ", ".join(
                f"{s.scope}: {s.nodes_seen} nodes" + ("" if s.ok else f" ({s.error})") for s in report.scopes
            )
            self.stdout.write(f"{provider.name} synced from its emulator: {scopes}")
        # The emulated instances include types and regions the catalogue does not price: give them demo estimates.
        from devtools.demo.billing import demo_price_estimates_seed

        self.stdout.write(f"{demo_price_estimates_seed()} demo price estimates added for the synced instances")
        self.stdout.write(f"emulated EC2 at {aws_url}, Compute at {gcp_url}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            gcp.stop()
            aws.stop()
