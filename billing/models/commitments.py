"""Commitments bought from a cloud: reserved instances, savings plans and committed-use discounts.

The ledger applies them hour by hour (billing.commitments): eligible node-hours are covered at the committed
rate, and what the commitment pays for but no node used is its own line of spend (``CommitmentHour``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from billing.choices import CommitmentBasis, CommitmentKind
from billing.models.prices import InstancePrice
from core.validators import validate_one_line
from fleet.choices import ProviderKind
from fleet.scoping import TeamScopedQuerySet

money = {"max_digits": 14, "decimal_places": 6}

# The basis a kind is bought on (a committed-use discount is resource-based, count, or spend-based), and the
# clouds that sell it.
KIND_BASIS = {
    CommitmentKind.RESERVED_INSTANCE: CommitmentBasis.COUNT,
    CommitmentKind.SAVINGS_PLAN: CommitmentBasis.SPEND,
}
KIND_PROVIDER = {
    CommitmentKind.RESERVED_INSTANCE: (ProviderKind.AWS,),
    CommitmentKind.SAVINGS_PLAN: (ProviderKind.AWS,),
    CommitmentKind.COMMITTED_USE: (ProviderKind.GCP,),
}
KIND_BASIS_ERROR = {
    CommitmentKind.RESERVED_INSTANCE: "Reserved instances commit to a number of instances: the basis is “count”.",
    CommitmentKind.SAVINGS_PLAN: "A savings plan commits to $ per hour: the basis is “spend”.",
}
KIND_HINT = {
    ProviderKind.AWS: "An AWS account has reserved instances or savings plans",
    ProviderKind.GCP: "A Google Cloud account has committed-use discounts (resource-based: count basis)",
}


class Commitment(models.Model):
    """One commitment of a cloud account over [start, end) (UTC days).

    - ``count`` basis (reserved instances, resource-based CUDs): ``count`` instances of ``instance_type`` in
      ``region`` are paid ``rate_usd_per_h`` each, every hour, used or not.
    - ``spend`` basis (savings plans, spend-based CUDs): ``hourly_commitment_usd`` of spend is paid every hour;
      eligible usage is charged its on-demand price less ``discount_pct`` until the hour's commitment is used up.
    ``region`` and ``instance_type`` empty mean every region / every instance type of the account.
    """

    provider = models.ForeignKey("fleet.Provider", on_delete=models.PROTECT, related_name="commitments")
    name = models.CharField(max_length=128, validators=[validate_one_line], help_text="e.g. the RI or plan id.")
    kind = models.CharField(max_length=24, choices=CommitmentKind.choices)
    basis = models.CharField(max_length=8, choices=CommitmentBasis.choices)
    region = models.CharField(max_length=64, blank=True, help_text="Empty: every region of the account.")
    instance_type = models.CharField(max_length=64, blank=True, help_text="Empty: every instance type.")
    count = models.PositiveIntegerField(null=True, blank=True, help_text="Count basis: instances committed.")
    rate_usd_per_h = models.DecimalField(
        **money,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Count basis: effective $/h per instance (upfront payment amortised over the term).",
    )
    hourly_commitment_usd = models.DecimalField(
        **money,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Spend basis: $ committed per hour.",
    )
    discount_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Spend basis: the plan's discount off the on-demand price.",
    )
    start = models.DateField(help_text="First UTC day covered.")
    end = models.DateField(help_text="First UTC day no longer covered.")
    team = models.ForeignKey(
        "fleet.Team",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who pays the unused part; empty: the fleet.",
    )
    note = models.CharField(max_length=300, blank=True, validators=[validate_one_line])
    created = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("provider_id", "start", "pk")
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="%(app_label)s_%(class)s_ends_after"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}, {self.start} – {self.end})"

    def clean(self) -> None:
        """The rules of a commitment (API, admin and ``billing.commitments.commitment_save`` all apply them)."""
        errors: dict[str, str] = {}
        if self.start and self.end and self.end <= self.start:
            errors["end"] = "The end (first day no longer covered) must be after the start."
        provider = self.provider if self.provider_id else None
        if provider is not None and provider.kind == ProviderKind.ONPREM:
            errors["provider"] = "Commitments are bought from a cloud: choose an AWS or GCP account."
        errors.update(self._kind_errors(provider))
        if self.basis == CommitmentBasis.COUNT:
            errors.update(self._count_errors())
        elif self.basis == CommitmentBasis.SPEND:
            errors.update(self._spend_errors())
        if provider is not None and "provider" not in errors:
            errors.update(self._catalogue_errors(provider.kind))
        if not errors and provider is not None and self.start and self.end and self.kind and self.basis:
            other = self.overlapping().first()
            if other is not None:
                errors["start"] = (
                    f"It overlaps commitment #{other.pk} “{other.name}” ({other.start} – {other.end}) of the"
                    " same account, kind, basis, region and instance type: change that one instead."
                )
        if errors:
            raise ValidationError(errors)

    def _kind_errors(self, provider) -> dict[str, str]:
        """What each cloud sells: AWS reserved instances (count basis) and savings plans (spend basis); GCP
        committed-use discounts, resource-based (count basis) or spend-based (spend basis)."""
        errors = {}
        kind = self.kind if self.kind in CommitmentKind.values else None
        if kind in KIND_BASIS and self.basis in CommitmentBasis.values and self.basis != KIND_BASIS[kind]:
            errors["basis"] = KIND_BASIS_ERROR[kind]
        cloud = provider.kind if provider is not None and provider.kind != ProviderKind.ONPREM else None
        if kind and cloud and cloud not in KIND_PROVIDER[kind]:
            errors["kind"] = f"{KIND_HINT[cloud]} (“{kind}” is not sold by {provider.get_kind_display()})."
        return errors

    def _count_errors(self) -> dict[str, str]:
        errors = {}
        if not self.instance_type:
            errors["instance_type"] = "A count-basis commitment is for one instance type."
        if not self.count or self.count < 1:
            errors["count"] = "Give how many instances are committed (at least 1)."
        if self.rate_usd_per_h is None or self.rate_usd_per_h <= 0:
            errors["rate_usd_per_h"] = "Give the effective $/h per instance (more than 0)."
        if self.hourly_commitment_usd is not None:
            errors["hourly_commitment_usd"] = "Only a spend-basis commitment has an hourly commitment."
        if self.discount_pct is not None:
            errors["discount_pct"] = "Only a spend-basis commitment has a discount; give the rate per instance."
        return errors

    def _spend_errors(self) -> dict[str, str]:
        errors = {}
        if self.hourly_commitment_usd is None or self.hourly_commitment_usd <= 0:
            errors["hourly_commitment_usd"] = "Give the $ committed per hour (more than 0)."
        if self.discount_pct is None or not 0 < self.discount_pct < 100:
            errors["discount_pct"] = "Give the discount off on-demand, more than 0 and less than 100 %."
        if self.count is not None:
            errors["count"] = "Only a count-basis commitment has an instance count."
        if self.rate_usd_per_h is not None:
            errors["rate_usd_per_h"] = "Only a count-basis commitment has a rate per instance."
        return errors

    def _catalogue_errors(self, provider_kind: str) -> dict[str, str]:
        """A region or instance type the price catalogue does not know would cover nothing (the ledger prices a
        node-hour only from a catalogue row), so it is refused."""
        prices = InstancePrice.objects.filter(provider_kind=provider_kind)
        if self.region and not prices.filter(region=self.region).exists():
            return {"region": f"No {provider_kind} price is known in region {self.region!r}: check the region."}
        if self.instance_type:
            typed = prices.filter(instance_type=self.instance_type)
            if self.region:
                typed = typed.filter(region=self.region)
            if not typed.exists():
                where = f" in {self.region}" if self.region else ""
                return {"instance_type": f"No price is known for {self.instance_type!r}{where}: check the type."}
        return {}

    def overlapping(self):
        """Other commitments of the same account, kind, basis, region and instance type overlapping it in time."""
        return (
            Commitment.objects.filter(
                provider_id=self.provider_id,
                kind=self.kind,
                basis=self.basis,
                region=self.region,
                instance_type=self.instance_type,
                start__lt=self.end,
                end__gt=self.start,
            )
            .exclude(pk=self.pk)
            .order_by("start", "pk")
        )


class CommitmentHour(models.Model):
    """What one commitment did in one UTC hour: written by the ledger, read by the commitments page and spend."""

    commitment = models.ForeignKey(Commitment, on_delete=models.CASCADE, related_name="hours")
    hour = models.DateTimeField()
    committed_usd = models.DecimalField(**money, help_text="What the commitment costs this hour.")
    used_usd = models.DecimalField(**money, help_text="The part of it that covered node-hours.")
    unused_usd = models.DecimalField(**money, help_text="committed − used: spend on nothing.")
    eligible_list_usd = models.DecimalField(
        **money, help_text="On-demand value of the hour's eligible usage (covered or not)."
    )
    covered_list_usd = models.DecimalField(**money, help_text="On-demand value of the usage it covered.")

    class Meta:
        ordering = ("commitment_id", "hour")
        constraints = [
            models.UniqueConstraint(fields=("commitment", "hour"), name="%(app_label)s_%(class)s_unique_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.commitment_id}@{self.hour:%Y-%m-%d %H:00}"
