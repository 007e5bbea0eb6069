"""What capacity and data movement cost: cloud instance prices, discounts, on-prem cost models, egress rates.

Every row holds from its ``effective_from`` until a newer row for the same key replaces it, so a price in the
past stays true for the past: a new price is a new row, never an edit of the old one.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from billing.choices import LocationClass, PriceSource, PurchaseOption
from fleet.choices import ProviderKind

HOURS_PER_YEAR = Decimal(8760)
HOURS_PER_MONTH = HOURS_PER_YEAR / 12
money = {"max_digits": 14, "decimal_places": 6}


class InstancePrice(models.Model):
    """The hourly price of one cloud instance type in one region, GPUs included, from a date on."""

    provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    region = models.CharField(max_length=64)
    instance_type = models.CharField(max_length=64)
    gpu_model = models.CharField(max_length=32, help_text="Catalogue key, e.g. H100, A100-40GB (fleet.catalog).")
    gpu_count = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    on_demand_usd_per_h = models.DecimalField(
        **money, null=True, blank=True, validators=[MinValueValidator(0)], help_text="Empty: not sold on-demand."
    )
    spot_usd_per_h = models.DecimalField(
        **money, null=True, blank=True, validators=[MinValueValidator(0)], help_text="Empty: no spot price known."
    )
    effective_from = models.DateField(help_text="The first UTC day this price holds.")
    source = models.CharField(max_length=16, choices=PriceSource.choices, default=PriceSource.OVERRIDE)
    note = models.CharField(max_length=300, blank=True, help_text="Where the figure comes from.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("provider_kind", "region", "instance_type", "-effective_from", "source")
        constraints = [
            models.UniqueConstraint(
                fields=("provider_kind", "region", "instance_type", "effective_from", "source"),
                name="%(app_label)s_%(class)s_unique_key",
                violation_error_message="This instance type already has a price from this source on this day.",
            ),
            models.CheckConstraint(
                condition=~Q(provider_kind=ProviderKind.ONPREM), name="%(app_label)s_%(class)s_cloud_only"
            ),
            models.CheckConstraint(
                condition=Q(on_demand_usd_per_h__isnull=False) | Q(spot_usd_per_h__isnull=False),
                name="%(app_label)s_%(class)s_has_a_price",
            ),
        ]
        indexes = [models.Index(fields=("provider_kind", "region", "instance_type", "effective_from"))]

    def __str__(self) -> str:
        return f"{self.provider_kind}:{self.region}:{self.instance_type} from {self.effective_from}"

    def clean(self) -> None:
        errors = {}
        if self.provider_kind == ProviderKind.ONPREM:
            errors["provider_kind"] = "On-prem capacity is priced by on-prem cost models, not instance prices."
        if self.on_demand_usd_per_h is None and self.spot_usd_per_h is None:
            errors["on_demand_usd_per_h"] = "Give an on-demand or a spot price (or both)."
        if errors:
            raise ValidationError(errors)


class Discount(models.Model):
    """A negotiated discount (EDP, committed use, private pricing) on one provider account's compute."""

    provider = models.ForeignKey("fleet.Provider", on_delete=models.CASCADE, related_name="discounts")
    percent = models.DecimalField(
        max_digits=5, decimal_places=2, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    applies_to = models.CharField(max_length=16, choices=PurchaseOption.choices, default=PurchaseOption.ALL)
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True, help_text="The last day it holds; empty: open-ended.")
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("provider__name", "-effective_from", "pk")
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__gte=0) & Q(percent__lte=100), name="%(app_label)s_%(class)s_percent_range"
            ),
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True) | Q(effective_to__gte=models.F("effective_from")),
                name="%(app_label)s_%(class)s_period_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} −{self.percent}% from {self.effective_from}"

    def clean(self) -> None:
        if self.effective_to and self.effective_from and self.effective_to < self.effective_from:
            raise ValidationError({"effective_to": "The discount cannot end before it starts."})
        if self.provider_id and self.provider.kind == ProviderKind.ONPREM:
            raise ValidationError({"provider": "Discounts apply to cloud accounts; on-prem has cost models."})


class OnPremCostModel(models.Model):
    """What an owned GPU costs per hour: purchase price over its amortisation period plus yearly operations.

    Set on a site (optionally for one GPU model) or on a single node; the node's own model wins, then the
    site's model for the node's GPU model, then the site's model for any GPU. Energy is not in here: it is
    measured (telemetry watts × the site's PUE × its $/kWh).
    """

    site = models.ForeignKey("fleet.Site", on_delete=models.CASCADE, null=True, blank=True, related_name="cost_models")
    node = models.ForeignKey("fleet.Node", on_delete=models.CASCADE, null=True, blank=True, related_name="cost_models")
    gpu_model = models.CharField(
        max_length=100, blank=True, help_text="Site models only: the NVML model name it covers; empty: any."
    )
    purchase_usd_per_gpu = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(0)],
        help_text="Purchase price of the server divided by its GPUs (networking and storage share included).",
    )
    amortisation_months = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(240)])
    ops_usd_per_gpu_year = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(0)],
        help_text="Yearly support, space and staff per GPU (not electricity, which is measured).",
    )
    effective_from = models.DateField()
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("site__name", "node__name", "gpu_model", "-effective_from", "pk")
        verbose_name = "on-prem cost model"
        constraints = [
            models.CheckConstraint(
                condition=(Q(site__isnull=False) & Q(node__isnull=True))
                | (Q(site__isnull=True) & Q(node__isnull=False)),
                name="%(app_label)s_%(class)s_site_xor_node",
                violation_error_message="A cost model belongs to a site or to a node, not both.",
            ),
            models.UniqueConstraint(
                fields=("site", "gpu_model", "effective_from"),
                condition=Q(site__isnull=False),
                name="%(app_label)s_%(class)s_unique_site",
            ),
            models.UniqueConstraint(
                fields=("node", "effective_from"),
                condition=Q(node__isnull=False),
                name="%(app_label)s_%(class)s_unique_node",
            ),
        ]

    def __str__(self) -> str:
        scope = self.node or f"{self.site}{':' + self.gpu_model if self.gpu_model else ''}"
        return f"{scope} from {self.effective_from}"

    @property
    def usd_per_gpu_hour(self) -> Decimal:
        """Amortisation plus operations per GPU-hour (energy excluded)."""
        return (
            self.purchase_usd_per_gpu / (self.amortisation_months * HOURS_PER_MONTH)
            + self.ops_usd_per_gpu_year / HOURS_PER_YEAR
        )

    def clean(self) -> None:
        errors = {}
        if (self.site_id is None) == (self.node_id is None):
            errors["site"] = "Choose a site or a node (exactly one)."
        elif self.site_id and not self.site.is_onprem:
            errors["site"] = "Cost models are for on-prem sites; cloud capacity has instance prices."
        elif self.node_id and not self.node.site.is_onprem:
            errors["node"] = "Cost models are for on-prem nodes; cloud capacity has instance prices."
        if self.node_id and self.gpu_model:
            errors["gpu_model"] = "A node's cost model covers all its GPUs; leave the GPU model empty."
        if errors:
            raise ValidationError(errors)


class EgressRate(models.Model):
    """$ per GB for data leaving one provider kind towards a class of destination, in volume tiers."""

    provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices, help_text="Where data leaves.")
    location_class = models.CharField(max_length=16, choices=LocationClass.choices)
    tier_start_gb = models.PositiveBigIntegerField(
        default=0, help_text="The rate applies to GB beyond this much moved in the same calendar month."
    )
    usd_per_gb = models.DecimalField(max_digits=10, decimal_places=6, validators=[MinValueValidator(0)])
    effective_from = models.DateField()
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("provider_kind", "location_class", "-effective_from", "tier_start_gb")
        constraints = [
            models.UniqueConstraint(
                fields=("provider_kind", "location_class", "tier_start_gb", "effective_from"),
                name="%(app_label)s_%(class)s_unique_tier",
                violation_error_message="This tier already has a rate from this day.",
            ),
            models.CheckConstraint(condition=Q(usd_per_gb__gte=0), name="%(app_label)s_%(class)s_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.provider_kind} {self.location_class} >{self.tier_start_gb} GB: ${self.usd_per_gb}/GB"
