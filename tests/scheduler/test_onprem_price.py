"""One price for an owned GPU-hour: what placement compares is what the ledger charges (``billing.rates``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.ledger import ledger_compute
from billing.models import LedgerEntry, OnPremCostModel
from billing.rates import onprem_gpu_hour_prices
from fleet.models import Node
from fleet.telemetry.storage import Sample, hour_rollup, samples_ingest
from scheduler.inputs import fleet_inputs

pytestmark = pytest.mark.django_db


def test_the_schedulers_onprem_gpu_hour_equals_the_ledgers_for_the_same_node_and_hour(scenario):
    """dgx-1 draws 250…545 W per GPU over one hour (a minute each); placement prices its next GPU-hour from that
    hour's measured power, and the ledger charges that hour: compute $ + energy $ per GPU-hour must be equal."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    Node.objects.filter(pk=scenario.node.pk).update(launched_at=hour - timedelta(days=1))
    samples_ingest(
        samples=[
            Sample(
                gpu_id=gpu.pk,
                ts=hour + timedelta(minutes=minute, seconds=30),
                util_pct=90.0,
                mem_used_mib=1000.0,
                power_w=250.0 + 5 * minute,
                temp_c=60.0,
                sm_clock_mhz=1500.0,
            )
            for gpu in scenario.node.gpus.all()
            for minute in range(60)
        ]
    )
    hour_rollup(start=hour, end=hour + timedelta(hours=1))
    ledger_compute(start=hour, end=hour + timedelta(hours=1))
    entry = LedgerEntry.objects.get(node=scenario.node, hour=hour)
    assert entry.active_s == 3600 and entry.gpu_count == 8
    ledger_per_gpu_hour = (entry.compute_usd + entry.energy_usd) / entry.gpu_hours

    (offered,) = [n for n in fleet_inputs(now=hour + timedelta(hours=1)).nodes if n.id == scenario.node.pk]
    # By hand: 1.10 amortisation and operations + 397.5 W mean × $0.20/kWh × PUE 1.25 / 1000 = 1.199375.
    assert offered.usd_per_gpu_h == ledger_per_gpu_hour == Decimal("1.199375")


def test_without_measured_power_the_estimate_is_labelled(scenario):
    """No telemetry yet: 0.7 × the 700 W limit is an estimate (the ledger charges energy only once measured)."""
    node = Node.objects.select_related("site__provider").get(pk=scenario.node.pk)
    node.power_limit_w = 700
    price = onprem_gpu_hour_prices(nodes=[node], now=timezone.now())[node.pk]
    assert (price.energy_basis, price.watts, price.usd) == ("estimated", Decimal("490.0"), Decimal("1.2225"))


def test_a_node_without_a_cost_model_has_no_price(scenario):
    """Its cost is unknown, so placement cannot compare it (fleet_inputs leaves it out)."""
    OnPremCostModel.objects.all().delete()
    node = Node.objects.select_related("site__provider").get(pk=scenario.node.pk)
    assert onprem_gpu_hour_prices(nodes=[node], now=timezone.now()) == {}
    assert scenario.node.pk not in {n.id for n in fleet_inputs(now=timezone.now()).nodes}
