"""Model rules (``clean``) and the database constraints behind them."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from fleet.models import GPU, Node, Site
from tests.factories import (
    GPUFactory,
    NodeFactory,
    OnPremSiteFactory,
    ProjectFactory,
    ProviderFactory,
    SiteFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


def errors_of(instance) -> dict:
    with pytest.raises(ValidationError) as info:
        instance.full_clean()
    return info.value.message_dict


def test_gpu_uuid_is_unique_in_the_database():
    gpu = GPUFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        GPU.objects.create(node=NodeFactory(), index=0, uuid=gpu.uuid, model="x", memory_mib=1)


def test_gpu_index_is_unique_per_node():
    gpu = GPUFactory(index=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        GPU.objects.create(node=gpu.node, index=3, uuid="GPU-aaaaaaaa-0000", model="x", memory_mib=1)


def test_gpu_memory_must_be_positive_in_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        GPU.objects.create(node=NodeFactory(), index=0, uuid="GPU-bbbbbbbb-0000", model="x", memory_mib=0)


def test_blank_gpu_uuid_means_unknown():
    first = GPUFactory.build(node=NodeFactory(), index=0, uuid="")
    first.full_clean()
    first.save()
    second = GPUFactory.build(node=first.node, index=1, uuid="")
    second.full_clean()
    second.save()
    assert GPU.objects.filter(uuid__isnull=True).count() == 2


@pytest.mark.parametrize("uuid", ["gpu-123", "GPU-", "GPU-zz zz", "8b2c0d4e-1111-2222-3333-444455556666"])
def test_gpu_uuid_format(uuid):
    assert "uuid" in errors_of(GPUFactory.build(node=NodeFactory(), uuid=uuid))


def test_mig_uuid_is_accepted():
    GPUFactory.build(node=NodeFactory(), uuid="MIG-4b3e2c11-9a7d-5f1e-8c6b-0d2e4f6a8b9c").full_clean()


def test_node_belongs_to_exactly_one_site_and_names_are_unique_per_site():
    node = NodeFactory()
    assert node.site_id is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        Node.objects.create(site=node.site, name=node.name, lifecycle="spot")
    # The same name in another site is fine.
    Node.objects.create(site=SiteFactory(), name=node.name, lifecycle="spot")


def test_node_project_must_belong_to_its_team():
    node = NodeFactory.build(site=SiteFactory(), team=TeamFactory(), project=ProjectFactory())
    assert "project" in errors_of(node)


def test_node_with_project_needs_team():
    assert "team" in errors_of(NodeFactory.build(site=SiteFactory(), project=ProjectFactory()))


@pytest.mark.parametrize(("site_factory", "lifecycle"), [(OnPremSiteFactory, "spot"), (SiteFactory, "owned")])
def test_lifecycle_matches_site_kind(site_factory, lifecycle):
    assert "lifecycle" in errors_of(NodeFactory.build(site=site_factory(), lifecycle=lifecycle))


@pytest.mark.parametrize(
    ("field", "value"),
    [("token_ref", "hunter2"), ("token_ref", "file:relative/path"), ("labels", {"a": 1}), ("labels", [1])],
)
def test_node_reference_and_label_validation(field, value):
    node = NodeFactory.build(site=SiteFactory(), **{field: value})
    assert field in errors_of(node)


def test_onprem_site_needs_energy_price_and_pue():
    site = OnPremSiteFactory.build(provider=OnPremSiteFactory().provider, electricity_usd_per_kwh=None, pue=None)
    assert {"electricity_usd_per_kwh", "pue"} <= set(errors_of(site))


def test_pue_below_one_is_refused_by_the_database_too():
    site = OnPremSiteFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Site.objects.filter(pk=site.pk).update(pue="0.9")


@pytest.mark.parametrize(
    ("kind", "account_id", "credential_ref", "field"),
    [
        ("aws", "1234", "", "account_id"),
        ("gcp", "Bad_Project", "", "account_id"),
        ("aws", "123456789012", "aws_secret_access_key=abc", "credential_ref"),
        ("onprem", "", "adc", "credential_ref"),
    ],
)
def test_provider_validation(kind, account_id, credential_ref, field):
    provider = ProviderFactory.build(kind=kind, account_id=account_id, credential_ref=credential_ref)
    assert field in errors_of(provider)
