"""A small, realistic ledger for the FOCUS tests, written row by row with the ORM (figures worked by hand):

Day 1 (2026-03-02) and day 2 (2026-03-03), UTC:
- AWS account 111111111111 (us-east-1): the reserved instance "@ri-p5" (1 × p5.48xlarge at $30/h, team alpha)
  in force all of day 1 (24 hours); ``p5`` (on-demand p5.48xlarge, $55.04/h, team alpha / project train) runs
  day 1 00:00–02:00, covered by it ($30/h); ``p5b`` (team alpha) runs 01:00–02:00 at $55.04 (the RI is taken);
  the RI's other 22 hours are unused: $660. ``spot`` (spot p4d.24xlarge, team beta, $12.50/h) runs day 1
  00:00–02:00 and day 2 00:00–01:00 (idle and broken GPU-hours too).
- GCP project fleet-gcp-1 (us-central1): ``a3`` a3-highgpu-8g of team alpha, $88.49/h, day 1 05:00–06:00, its GPUs
  sliced: alpha holds 0.75 of the hour, beta 0.25 (LedgerShare rows).
- On-prem (dc-1): ``=HYPERLINK(...)`` (a hostile name) of team beta, $11.986301/h + $0.9408 energy an hour
  (7.84 kWh, 3.136 kgCO2e), day 2 10:00–12:00.

Totals: day 1 = 30 × 2 + 55.04 + 660 (unused) + 12.50 × 2 + 88.49 = 888.53;
day 2 = 12.50 + 2 × (11.986301 + 0.9408) = 38.354202; the two days: 926.884202.
The daily sums are rebuilt with billing.ledger.ledger_days_refresh (the unused commitment's rows too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from billing.choices import CommitmentBasis, CommitmentKind
from billing.ledger import ledger_days_refresh
from billing.models import Commitment, CommitmentHour, LedgerEntry, LedgerShare
from fleet.choices import Continent, NodeLifecycle, ProviderKind
from tests.factories import (
    NodeFactory,
    OnPremSiteFactory,
    ProjectFactory,
    ProviderFactory,
    SiteFactory,
    TeamFactory,
)

D = Decimal
DAY1, DAY2 = date(2026, 3, 2), date(2026, 3, 3)
DAY1_USD, DAY2_USD = D("888.53"), D("38.354202")
TOTAL_USD = DAY1_USD + DAY2_USD
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-40GB"
HOSTILE_NAME = '=HYPERLINK("http://evil.example/","x")'


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def entry(node, hour: datetime, *, rate: str, compute: str | None = None, gpus: int = 8, **figures) -> LedgerEntry:
    """One full hour of ``node`` at ``rate`` $/h (compute = rate unless given); other figures by keyword."""
    site = node.site
    gpu_model = figures.pop("gpu_model", H100)
    values = {
        "energy_kwh": D(0),
        "energy_usd": D(0),
        "gpu_hours": D(gpus),
        "idle_gpu_hours": D(0),
        "idle_usd": D(0),
        "co2e_kg": None,
        **{key: D(value) if isinstance(value, str) else value for key, value in figures.items()},
    }
    return LedgerEntry.objects.create(
        node=node,
        hour=hour,
        provider=site.provider,
        provider_kind=site.provider.kind,
        site=site,
        team=node.team,
        project=node.project,
        gpu_model=gpu_model,
        lifecycle=node.lifecycle,
        gpu_count=gpus,
        active_s=3600,
        rate_usd_per_h=D(rate),
        compute_usd=D(compute if compute is not None else rate),
        **values,
    )


@dataclass
class FocusWorld:
    alpha: object
    beta: object
    aws: object
    gcp: object
    onprem: object
    commitment: Commitment
    nodes: dict


def days_refresh(days: list[date]) -> None:
    """Rebuild the daily sums of ``days``: entries and shares, and the unused commitments' rows."""
    ledger_days_refresh(days=days)


def focus_world() -> FocusWorld:
    alpha, beta = TeamFactory(name="Alpha", slug="alpha"), TeamFactory(name="Beta", slug="beta")
    train = ProjectFactory(team=alpha, name="Train", slug="train")
    aws = ProviderFactory(name="aws-main", account_id="111111111111")
    gcp = ProviderFactory(name="gcp-main", kind=ProviderKind.GCP, account_id="fleet-gcp-1", credential_ref="adc")
    use1 = SiteFactory(provider=aws, name="aws-use1", region="us-east-1", zone="us-east-1a")
    usc1 = SiteFactory(
        provider=gcp, name="gcp-usc1", region="us-central1", zone="us-central1-a", continent=Continent.NORTH_AMERICA
    )
    dc1 = OnPremSiteFactory(name="dc-1")
    p5 = NodeFactory(site=use1, name="p5", external_id="i-0p5", team=alpha, project=train)
    p5b = NodeFactory(site=use1, name="p5b", external_id="i-0p5b", team=alpha)
    spot = NodeFactory(
        site=use1, name="spot", external_id="i-0spot", instance_type="p4d.24xlarge", team=beta,
        lifecycle=NodeLifecycle.SPOT,
    )  # fmt: skip
    a3 = NodeFactory(site=usc1, name="a3", external_id="a3-vm-1", instance_type="a3-highgpu-8g", team=alpha)
    owned = NodeFactory(
        site=dc1, name=HOSTILE_NAME, external_id="", instance_type="", team=beta, lifecycle=NodeLifecycle.OWNED
    )
    ri = Commitment.objects.create(
        provider=aws,
        name="@ri-p5",
        kind=CommitmentKind.RESERVED_INSTANCE,
        basis=CommitmentBasis.COUNT,
        region="us-east-1",
        instance_type="p5.48xlarge",
        count=1,
        rate_usd_per_h=D(30),
        start=DAY1,
        end=DAY2,
        team=alpha,
    )
    entry(p5, at(DAY1, 0), rate="55.04", compute="30", covered_usd="30", commitment=ri)
    entry(p5, at(DAY1, 1), rate="55.04", compute="30", covered_usd="30", commitment=ri)
    entry(p5b, at(DAY1, 1), rate="55.04")  # the RI's one instance is taken by p5: on-demand
    for hour in range(24):  # the RI is paid every hour of its day; p5 used it 00:00-02:00
        used = D(30) if hour < 2 else D(0)
        CommitmentHour.objects.create(
            commitment=ri,
            hour=at(DAY1, hour),
            committed_usd=D(30),
            used_usd=used,
            unused_usd=D(30) - used,
            eligible_list_usd=D("110.08") if hour == 1 else (D("55.04") if hour == 0 else D(0)),
            covered_list_usd=D("55.04") if hour < 2 else D(0),
        )
    for hour in (0, 1):
        entry(spot, at(DAY1, hour), rate="12.5", gpu_model=A100, idle_gpu_hours="2", idle_usd="3.125")
    entry(spot, at(DAY2, 0), rate="12.5", gpu_model=A100, broken_gpu_hours="1", broken_usd="1.5625")
    sliced = entry(a3, at(DAY1, 5), rate="88.49", energy_kwh="5.6", co2e_kg="2.24")
    for team, fraction in ((alpha, "0.75"), (beta, "0.25")):
        f = D(fraction)
        LedgerShare.objects.create(
            entry=sliced,
            team=team,
            fraction=f,
            gpu_hours=8 * f,
            compute_usd=D("88.49") * f,
            energy_kwh=D("5.6") * f,
            energy_usd=D(0),
            idle_gpu_hours=D(0),
            idle_usd=D(0),
            co2e_kg=D("2.24") * f,
            broken_gpu_hours=D(0),
            broken_usd=D(0),
            covered_usd=D(0),
        )
    for hour in (10, 11):
        entry(
            owned, at(DAY2, hour), rate="11.986301", energy_kwh="7.84", energy_usd="0.9408", co2e_kg="3.136"
        )  # fmt: skip
    days_refresh([DAY1, DAY2])
    return FocusWorld(
        alpha=alpha,
        beta=beta,
        aws=aws,
        gcp=gcp,
        onprem=dc1.provider,
        commitment=ri,
        nodes={"p5": p5, "p5b": p5b, "spot": spot, "a3": a3, "owned": owned},
    )
