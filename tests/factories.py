"""factory_boy factories for the fleet models; deterministic sequences, real GPU shapes."""

import factory
from factory.django import DjangoModelFactory

from fleet.catalog import GPU_SPECS
from fleet.choices import Continent, NodeLifecycle, NodeState, ProviderKind
from fleet.models import GPU, Node, Project, Provider, Site, Team

H100 = GPU_SPECS["H100"]


class ProviderFactory(DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"aws-{n}")
    kind = ProviderKind.AWS
    account_id = factory.Sequence(lambda n: f"{100000000000 + n}")
    credential_ref = "profile:fleetdeck"


class OnPremProviderFactory(ProviderFactory):
    name = factory.Sequence(lambda n: f"onprem-{n}")
    kind = ProviderKind.ONPREM
    account_id = ""
    credential_ref = ""


class SiteFactory(DjangoModelFactory):
    class Meta:
        model = Site

    provider = factory.SubFactory(ProviderFactory)
    name = factory.Sequence(lambda n: f"aws-us-east-1-{n}")
    region = "us-east-1"
    zone = "us-east-1a"
    continent = Continent.NORTH_AMERICA


class OnPremSiteFactory(SiteFactory):
    provider = factory.SubFactory(OnPremProviderFactory)
    name = factory.Sequence(lambda n: f"dc-{n}")
    region = "amsterdam"
    zone = ""
    continent = Continent.EUROPE
    electricity_usd_per_kwh = "0.21000"
    pue = "1.35"


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class ProjectFactory(DjangoModelFactory):
    class Meta:
        model = Project

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class NodeFactory(DjangoModelFactory):
    class Meta:
        model = Node

    site = factory.SubFactory(SiteFactory)
    name = factory.Sequence(lambda n: f"node-{n:04d}")
    external_id = factory.Sequence(lambda n: f"i-{n:017x}")
    instance_type = "p5.48xlarge"
    lifecycle = NodeLifecycle.ON_DEMAND
    state = NodeState.RUNNING


class GPUFactory(DjangoModelFactory):
    class Meta:
        model = GPU

    node = factory.SubFactory(NodeFactory)
    index = factory.Sequence(lambda n: n % 8)
    uuid = factory.Sequence(lambda n: f"GPU-{n:08x}-0000-0000-0000-000000000000")
    model = H100.nvml_name
    memory_mib = H100.memory_mib
    power_limit_w = H100.power_limit_w
