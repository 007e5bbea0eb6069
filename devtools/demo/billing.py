"""The demo's billing data: on-prem cost models and price estimates, the ledger, budgets and a weekly report.

Each seed goes through billing's own services (the catalogue loader, the ledger backfill, the models billing's
forms create) and is idempotent, so ``seed_demo --if-empty`` can run it on every ``make demo``.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.db import transaction
from django.db.models import Count, Min, Sum
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.carbon import carbon_data_load, grid_intensity_import
from billing.catalogue import CLOUD_KINDS, catalogue_load
from billing.choices import CommitmentBasis, CommitmentKind, PriceSource, ReportPeriod
from billing.commitments import commitment_save
from billing.ledger import LedgerReport, ledger_backfill
from billing.models import Budget, Commitment, InstancePrice, OnPremCostModel, ReportSubscription
from billing.rates import region_continent
from devtools.demo.fleet import DEMO_PROVIDERS, DEMO_SITES
from fleet.catalog import GPU_SPECS, INSTANCE_TYPES, gpu_key
from fleet.choices import NodeLifecycle, ProviderKind
from fleet.models import Node, Provider, Site, Team

DEMO_COST_MODELS_FROM = date(2024, 1, 1)
# Per-GPU purchase price (server price ÷ GPUs, networking share included), amortised over 48 months, with
# yearly operations (support, space, staff; not electricity, which is measured) at about 10 % of capex.
# Street prices, rounded: DGX H100 ≈ $300k per 8-GPU server; HGX A100 80GB ≈ $150k; a 4×L40S server ≈ $60k;
# a 2×T4 inference box ≈ $12k.
DEMO_SERVER_COSTS = {
    # catalogue shape → (server USD, note)
    "dgx-h100": (Decimal(300_000), "DGX H100 ≈ $300k per 8-GPU server; 48 months; ops 10 %/year of capex"),
    "hgx-a100-80gb": (Decimal(150_000), "HGX A100 80GB ≈ $150k per 8-GPU server; 48 months; ops 10 %/year"),
    "l40s-4x": (Decimal(60_000), "4×L40S server ≈ $60k; 48 months; ops 10 %/year of capex"),
    "t4-inference-2x": (Decimal(12_000), "2×T4 inference server ≈ $12k; 48 months; ops 10 %/year of capex"),
}
DEMO_FALLBACK_USD_PER_GPU = Decimal(20_000)
DEMO_AMORTISATION_MONTHS = 48
DEMO_OPS_SHARE_PER_YEAR = Decimal("0.10")


@transaction.atomic
def demo_prices_seed() -> dict[str, int]:
    """Load the shipped catalogue and carbon data, give the demo's on-prem sites cost models and dc-sjc1 a day of
    hourly grid intensities, price the cloud nodes the catalogue misses, and give the AWS account its commitments
    (idempotent)."""
    report = catalogue_load()
    carbon = carbon_data_load()
    hours = demo_grid_hours_seed()
    onprem = {s.name: s for s in DEMO_SITES if s.provider == "onprem"}
    sites = Site.objects.filter(name__in=onprem, provider__kind=ProviderKind.ONPREM)
    created = 0
    for site in sites:
        plans = []
        for shape, _ in onprem[site.name].types:
            server_usd, note = DEMO_SERVER_COSTS[shape]
            spec = INSTANCE_TYPES[shape]
            plans.append((GPU_SPECS[spec.gpu].nvml_name, server_usd / spec.gpu_count, note))
        plans.append(("", DEMO_FALLBACK_USD_PER_GPU, "Any other GPU: ≈ $20k per GPU; 48 months; ops 10 %/year"))
        for nvml_name, per_gpu, note in plans:
            _, made = OnPremCostModel.objects.update_or_create(
                site=site,
                gpu_model=nvml_name,
                effective_from=DEMO_COST_MODELS_FROM,
                defaults={
                    "purchase_usd_per_gpu": per_gpu.quantize(Decimal("0.01")),
                    "amortisation_months": DEMO_AMORTISATION_MONTHS,
                    "ops_usd_per_gpu_year": (per_gpu * DEMO_OPS_SHARE_PER_YEAR).quantize(Decimal("0.01")),
                    "note": f"Demo figure: {note}",
                },
            )
            created += made
    estimates = demo_price_estimates_seed()
    return {
        **report.as_dict(),
        **carbon.as_dict(),
        "grid_hours": hours,
        "cost_models_created": created,
        "demo_price_estimates": estimates,
        "demo_commitments_created": demo_commitments_seed(),
    }


DEMO_COMMITMENTS_PROVIDER = "aws-prod"
DEMO_RI_REGION = "us-east-1"
DEMO_RI_RATE_SHARE = Decimal("0.60")  # a 1-year no-upfront RI costs about 60 % of on-demand
DEMO_SP_SHARE = Decimal("0.25")  # the savings plan commits a quarter of the account's other eligible list $/h
DEMO_SP_DISCOUNT_PCT = Decimal(28)
DEMO_COMMITMENTS_STARTED_DAYS_AGO = 120


def demo_commitments_seed(*, today: date | None = None) -> int:
    """Give the demo's AWS account a reserved-instance commitment and a Compute Savings Plan (1-year terms that
    started 120 days ago); returns how many were created. Idempotent: a commitment of the same name is left alone.

    SYNTHETIC figures, not a real purchase: the RI is for the most common on-demand or reserved instance type in
    us-east-1, one more instance than the account runs of it (so the spend page shows a small unused line) at
    60 % of its on-demand price; the savings plan commits a quarter of the on-demand $/h of the account's other
    eligible nodes, at 28 % off. Call after the prices (the rules check the catalogue) and before the ledger.
    """
    provider = Provider.objects.filter(name=DEMO_COMMITMENTS_PROVIDER, kind=ProviderKind.AWS).first()
    if provider is None:
        return 0
    eligible = list(
        Node.objects.filter(site__provider=provider, lifecycle__in=(NodeLifecycle.ON_DEMAND, NodeLifecycle.RESERVED))
        .exclude(instance_type="")
        .values_list("site__region", "instance_type")
        .order_by("pk")
    )
    prices = {}
    for price in InstancePrice.objects.filter(provider_kind=ProviderKind.AWS).order_by("effective_from", "pk"):
        if price.on_demand_usd_per_h is not None:
            prices[(price.region, price.instance_type)] = price.on_demand_usd_per_h
    counts = Counter(t for region, t in eligible if region == DEMO_RI_REGION and (region, t) in prices)
    if not counts:
        return 0
    ri_type, ri_count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    rest = sum(prices.get(key, Decimal(0)) for key in eligible) - ri_count * prices[(DEMO_RI_REGION, ri_type)]
    start = (today or billing_selectors.utc_today()) - timedelta(days=DEMO_COMMITMENTS_STARTED_DAYS_AGO)
    end = start.replace(year=start.year + 1) if (start.month, start.day) != (2, 29) else date(start.year + 1, 3, 1)
    term = {"provider": provider, "start": start, "end": end, "note": "Demo commitment: synthetic, 1-year term"}
    wanted = (
        Commitment(
            name=f"demo-ri-{ri_type}",
            kind=CommitmentKind.RESERVED_INSTANCE,
            basis=CommitmentBasis.COUNT,
            region=DEMO_RI_REGION,
            instance_type=ri_type,
            count=ri_count + 1,
            rate_usd_per_h=(prices[(DEMO_RI_REGION, ri_type)] * DEMO_RI_RATE_SHARE).quantize(Decimal("0.000001")),
            **term,
        ),
        Commitment(
            name="demo-compute-savings-plan",
            kind=CommitmentKind.SAVINGS_PLAN,
            basis=CommitmentBasis.SPEND,
            hourly_commitment_usd=max(Decimal(1), (rest * DEMO_SP_SHARE).quantize(Decimal("0.01"))),
            discount_pct=DEMO_SP_DISCOUNT_PCT,
            **term,
        ),
    )
    created = 0
    for commitment in wanted:
        if not Commitment.objects.filter(provider=provider, name=commitment.name).exists():
            commitment_save(commitment=commitment)
            created += 1
    return created


DEMO_GRID_HOURS_SITE = "dc-sjc1"
DEMO_GRID_UTC_OFFSET_H = -8  # San Jose (PST)


def demo_grid_hours_seed(*, now: datetime | None = None) -> int:
    """Give dc-sjc1 hourly grid intensities for the last complete UTC day, through billing's import service.

    SYNTHETIC demo values, not measurements: the site's operator value (198 g/kWh) × (1 − 0.3 cos(2π (h − 13) / 24))
    at local hour h, so the Californian solar dip (lowest at 13:00 local, 138.60 g/kWh; highest at 01:00, 257.40)
    shows on the ledger's hourly carbon. Returns the hours written (0 without the site); re-running replaces them.
    """
    site = Site.objects.filter(name=DEMO_GRID_HOURS_SITE).first()
    if site is None or site.carbon_g_per_kwh is None:
        return 0
    day = datetime.combine((now or timezone.now()).astimezone(UTC).date() - timedelta(days=1), datetime.min.time(), UTC)
    lines = ["site,hour,g_per_kwh"]
    for h in range(24):
        local = (h + DEMO_GRID_UTC_OFFSET_H) % 24
        value = site.carbon_g_per_kwh * Decimal(str(round(1 - 0.3 * math.cos(2 * math.pi * (local - 13) / 24), 4)))
        lines.append(f"{site.name},{(day + timedelta(hours=h)).isoformat()},{value.quantize(Decimal('0.01'))}")
    return grid_intensity_import(file=io.StringIO("\n".join(lines) + "\n"), now=now).rows


# Demo only: regions outside the fixtures' us-east-1 / us-central1 cost a little more (EU list prices run ≈10 %
# above US ones for these types); a GPU model the fixtures price nowhere gets a public list price per GPU-hour.
DEMO_REGION_FACTORS = {"north-america": Decimal("1.00"), "europe": Decimal("1.10")}
DEMO_GPU_HOUR_USD = {"L40S": (Decimal("1.861"), "AWS g6e.xlarge public on-demand list price, not in the fixtures")}


def demo_price_estimates_seed() -> int:
    """Give every demo cloud node's instance type a price in its region: the catalogue prices only part of them.

    Covers the cloud nodes of the demo providers as they are now (call again after the demo's inventory sync).
    Each estimate is an OVERRIDE row whose note says it is a demo estimate and how it was made: the same type's
    catalogue price in another region × a regional factor, else the catalogue's per-GPU price of the same GPU
    model × the GPU count, else DEMO_GPU_HOUR_USD. Idempotent; rows the catalogue prices are left alone.
    """
    catalogue = list(InstancePrice.objects.exclude(source=PriceSource.OVERRIDE).order_by("effective_from", "pk"))
    priced = {(p.provider_kind, p.region, p.instance_type) for p in InstancePrice.objects.all()}
    by_type = {(p.provider_kind, p.instance_type): p for p in catalogue}
    per_gpu = {}
    for price in catalogue:
        if price.on_demand_usd_per_h is not None:
            per_gpu[price.gpu_model] = (price.on_demand_usd_per_h / price.gpu_count, price)
    # Spot where no spot figure is known: the median spot / on-demand ratio of the catalogue.
    ratios = sorted(
        p.spot_usd_per_h / p.on_demand_usd_per_h for p in catalogue if p.spot_usd_per_h and p.on_demand_usd_per_h
    )
    spot_ratio = ratios[len(ratios) // 2] if ratios else Decimal("0.4")
    nodes = (
        Node.objects.filter(
            site__provider__name__in=[p[0] for p in DEMO_PROVIDERS], site__provider__kind__in=CLOUD_KINDS
        )
        .exclude(instance_type="")
        .annotate(gpu_count=Count("gpus"), gpu_model=Min("gpus__model"))
        .filter(gpu_count__gt=0)
        .values_list("site__provider__kind", "site__region", "instance_type", "gpu_model", "gpu_count")
        .order_by("site__provider__kind", "site__region", "instance_type")
        .distinct()
    )
    created = 0
    for kind, region, instance_type, nvml_name, gpu_count in nodes:
        if (kind, region, instance_type) in priced:
            continue
        priced.add((kind, region, instance_type))
        model = gpu_key(nvml_name)
        factor = DEMO_REGION_FACTORS.get(region_continent(kind, region), Decimal("1.10"))
        same_type = by_type.get((kind, instance_type))
        if same_type is not None and same_type.on_demand_usd_per_h is not None:
            on_demand = same_type.on_demand_usd_per_h * factor
            spot = same_type.spot_usd_per_h * factor if same_type.spot_usd_per_h is not None else None
            how = f"{same_type.region} catalogue price × {factor}"
        elif model in per_gpu:
            rate, source = per_gpu[model]
            on_demand, spot = rate * gpu_count * factor, None
            how = f"{source.instance_type} ({source.region}) per-GPU price × {gpu_count} GPUs × {factor}"
        elif model in DEMO_GPU_HOUR_USD:
            rate, why = DEMO_GPU_HOUR_USD[model]
            on_demand, spot = rate * gpu_count * factor, None
            how = f"{why}, × {gpu_count} GPUs × {factor}"
        else:
            continue  # the ledger reports the node as unpriced
        if spot is None:
            spot = on_demand * spot_ratio
            how += f"; spot = on-demand × {spot_ratio:.3f} (the catalogue's median spot ratio)"
        InstancePrice.objects.create(
            provider_kind=kind,
            region=region,
            instance_type=instance_type,
            effective_from=DEMO_COST_MODELS_FROM,
            source=PriceSource.OVERRIDE,
            gpu_model=model,
            gpu_count=gpu_count,
            on_demand_usd_per_h=on_demand.quantize(Decimal("0.000001")),
            spot_usd_per_h=spot.quantize(Decimal("0.000001")),
            note=f"Demo estimate, not a published price: {how}",
        )
        created += 1
    return created


def _month_to_date_usd(*, teams: list[Team], month: date, today: date) -> dict[int, Decimal]:
    """Each of ``teams``' spend from ``month``'s first day through ``today`` (teams without spend are absent)."""
    return dict(
        billing_selectors.ledger_day_rows(start=month, end=today + timedelta(days=1), teams=[t.pk for t in teams])
        .values_list("team_id")
        .annotate(s=Sum("total_usd"))
    )


def demo_budgets_seed(*, headroom: Decimal = Decimal("1.10"), today: date | None = None) -> list[Budget]:
    """Give every team without a budget one of this month's forecast × ``headroom`` (rounded up to $100;
    at least $100), alerting at 80 % and 100 % to ``<team-slug>-lead@example.com``: budgets relative to the
    month so far, for tests that want them to alert. The demo itself sizes its budgets with
    demo_team_budgets_seed (its docstring says why)."""
    today = today or billing_selectors.utc_today()
    month = billing_selectors.month_start_of(today)
    teams = list(Team.objects.filter(budgets__isnull=True).order_by("pk"))
    spend = _month_to_date_usd(teams=teams, month=month, today=today)
    created = []
    for team in teams:
        forecast = billing_selectors.month_forecast_usd(
            month_start=month, spent_usd=spend.get(team.pk, Decimal(0)), today=today
        )
        created.append(_budget_create(team=team, amount=forecast * headroom))
    return created


def _budget_create(*, team: Team, amount: Decimal) -> Budget:
    """A budget of ``amount`` rounded up to $100 (at least $100), alerting at 80 % and 100 % to the team's lead."""
    monthly = max(Decimal(100), (amount / 100).to_integral_value(rounding=ROUND_CEILING) * 100)
    return Budget.objects.create(
        team=team, monthly_usd=monthly, thresholds_pct=[80, 100], recipients=[f"{team.slug}-lead@example.com"]
    )


DEMO_RUN_RATE_DAYS = 7
# The month-end forecast of each healthy demo team as a share of its budget: varied, all well under the 80 % alert.
DEMO_HEALTHY_SHARES = {"inference": Decimal("0.72"), "platform": Decimal("0.61"), "data": Decimal("0.53")}
DEMO_HEALTHY_SHARE = Decimal("0.65")  # any other team without a budget


def demo_run_rate_usd(*, today: date) -> dict[int, Decimal]:
    """Each team's average spend per day over the complete UTC days of the DEMO_RUN_RATE_DAYS before ``today``
    that the ledger holds (divided by the days the ledger has, for every team alike); teams without spend there
    are absent."""
    rows = billing_selectors.ledger_day_rows(start=today - timedelta(days=DEMO_RUN_RATE_DAYS), end=today)
    days = rows.values("day").distinct().count()
    if not days:
        return {}
    totals = rows.exclude(team=None).values_list("team_id").annotate(s=Sum("total_usd"))
    return {team_id: total / days for team_id, total in totals if total}


def demo_team_budgets_seed(*, today: date | None = None) -> list[Budget]:
    """Give every team without a budget one it stays well under all month (the demo's healthy budgets): its
    monthly run rate (demo_run_rate_usd × the days of this month) ÷ its share (DEMO_HEALTHY_SHARES, else
    DEMO_HEALTHY_SHARE), rounded up to $100, alerting at 80 % and 100 % to ``<team-slug>-lead@example.com``. A
    team without spend in those days falls back to this month's forecast ÷ its share.

    Why not this month's forecast (demo_budgets_seed, which the demo used): the seed runs on any day of a month,
    and early in one the forecast is noisy and above all low. On the 1st at 02:00 it is two hours of spend × the
    month's days (a ``today`` date counts as a whole elapsed day), so every budget came out at about a tenth of a
    month's spend and every team was over within days; research, set to 85 % of those two hours, read 1,870 %
    two days later. The run rate of complete days is the same on the 1st and on the 30th, so month-end forecasts
    sit at 53-72 % of the budgets, month-to-date spend never reaches the 80 % alert, and a day more of the live
    ledger (the same nodes at the same prices; the cloud emulators add about 1 % for these teams) leaves them
    where they are. Idempotent: existing budgets are left alone.
    """
    today = today or billing_selectors.utc_today()
    month = billing_selectors.month_start_of(today)
    days_in_month = (billing_selectors.next_month_start(month) - month).days
    rates = demo_run_rate_usd(today=today)
    teams = list(Team.objects.filter(budgets__isnull=True).order_by("pk"))
    spend = _month_to_date_usd(teams=teams, month=month, today=today)
    created = []
    for team in teams:
        share = DEMO_HEALTHY_SHARES.get(team.slug, DEMO_HEALTHY_SHARE)
        if team.pk in rates:
            month_usd = rates[team.pk] * days_in_month
        else:
            month_usd = billing_selectors.month_forecast_usd(
                month_start=month, spent_usd=spend.get(team.pk, Decimal(0)), today=today
            )
        created.append(_budget_create(team=team, amount=month_usd / share))
    return created


DEMO_TIGHT_TEAM = "research"
DEMO_TIGHT_SHARE = Decimal("0.85")
DEMO_TIGHT_MIN_SHARE = Decimal("0.82")
# A day of the running demo's ledger in days of research's seeded run rate: demo_clouds' emulated instances add
# research's p5.48xlarge, p4d.24xlarge, a3-highgpu-8g and two a2-highgpu-8g (≈ $224/h at list price) to the
# ≈ $725/h of its nodes in a 300-node seed.
DEMO_LIVE_DAY_FACTOR = Decimal("1.3")


def demo_budget_tighten(*, today: date | None = None) -> str:
    """Set the demo's research budget so that this month's spend so far is 82-85 % of it: the demo's one budget
    near its limit, past its 80 % alert on the first check; returns the team's name, or "" when the team or its
    budget is missing. Re-running the seed (every ``make demo``) sizes it again for the month as it is then.

    The share: month-to-date spend M is e days of research's run rate r (e = M / r, demo_run_rate_usd). A day
    of the running demo's ledger adds about DEMO_LIVE_DAY_FACTOR × r, so the budget M / s stays under 100 % a
    day later when s ≤ e / (e + 1.3): s is that, kept between DEMO_TIGHT_MIN_SHARE and DEMO_TIGHT_SHARE (85 %
    from e ≈ 7.4 days; the forecast is over the budget, as it should be for a team near its limit). Early in a
    month (e < 5.9) no share is both past the 80 % alert and a day from 100 %: the alert wins, and a day later
    research reads 82 % × (e + 1.3) / e: about 150 % seeded on the 3rd, 120 % on the 4th (the old seed: 1,870 %).
    On a month's first day
    (e < 1) the share would make the budget a few hours' spend: the budget is that spend plus a live day's
    (M + 1.3 r) instead, under the alert at first and past it within the day. The amount is rounded DOWN to
    three significant figures, so rounding never takes it under the alert. Without a run rate: M / 85 %.
    """
    today = today or billing_selectors.utc_today()
    budget = Budget.objects.filter(team__slug=DEMO_TIGHT_TEAM).select_related("team").first()
    if budget is None:
        return ""
    month = billing_selectors.month_start_of(today)
    spent = billing_selectors.budget_spend(budgets=[budget], start=month, end=today + timedelta(days=1))[budget.pk]
    rate = demo_run_rate_usd(today=today).get(budget.team_id)
    if rate and spent < rate:
        amount = spent + rate * DEMO_LIVE_DAY_FACTOR
    elif rate:
        elapsed = spent / rate
        share = min(DEMO_TIGHT_SHARE, max(DEMO_TIGHT_MIN_SHARE, elapsed / (elapsed + DEMO_LIVE_DAY_FACTOR)))
        amount = spent / share
    else:
        amount = spent / DEMO_TIGHT_SHARE
    step = Decimal(10) ** max(0, len(str(int(amount))) - 3)
    budget.monthly_usd = max(Decimal(100), (amount / step).to_integral_value(ROUND_FLOOR) * step)
    budget.save(update_fields=["monthly_usd"])
    return budget.team.name


def demo_ledger_seed(*, days: int = 30, now: datetime | None = None) -> LedgerReport:
    """Compute the ledger of the last ``days`` UTC days and today so far (for ``seed_demo``, after prices load)."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    return ledger_backfill(start=today - timedelta(days=days), end=today, now=now)


def demo_reports_seed() -> ReportSubscription:
    """The demo's weekly whole-fleet report to finance@example.com (idempotent)."""
    subscription, _ = ReportSubscription.objects.get_or_create(
        name="Weekly fleet cost report",
        defaults={"recipients": ["finance@example.com"], "period": ReportPeriod.WEEKLY, "team": None},
    )
    return subscription
