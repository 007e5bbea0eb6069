"""Grid carbon intensity: per cloud region (shipped dataset), per site and hour (imported), and cloud PUE.

What a site's kWh emit is looked up in this order (billing.ledger): the site's imported hourly value for the
hour, else the operator's ``Site.carbon_g_per_kwh``, else (cloud sites) the shipped value of the site's region.
Cloud energy is measured GPU energy × the provider's published PUE (``ProviderPue``); on-prem energy already
carries the site's own PUE.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from fleet.choices import ProviderKind
from fleet.models.inventory import CARBON_G_PER_KWH_MAX

intensity = {
    "max_digits": 7,
    "decimal_places": 2,
    "validators": [MinValueValidator(0), MaxValueValidator(CARBON_G_PER_KWH_MAX)],
}


class GridIntensity(models.Model):
    """The average carbon intensity of the grid a cloud region draws from (gCO2e/kWh), from a published dataset."""

    provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    region = models.CharField(max_length=64)
    g_per_kwh = models.DecimalField(**intensity)
    source = models.CharField(max_length=200, help_text="Dataset and version the figure comes from.")

    class Meta:
        ordering = ("provider_kind", "region")
        verbose_name_plural = "grid intensities"
        constraints = [
            models.UniqueConstraint(fields=("provider_kind", "region"), name="%(app_label)s_%(class)s_unique_region"),
            models.CheckConstraint(
                condition=~Q(provider_kind=ProviderKind.ONPREM), name="%(app_label)s_%(class)s_cloud_only"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_kind}:{self.region} {self.g_per_kwh} g/kWh"


class GridIntensityHour(models.Model):
    """A site's grid carbon intensity in one UTC hour, imported from a CSV (e.g. an electricity-maps export)."""

    site = models.ForeignKey("fleet.Site", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    g_per_kwh = models.DecimalField(**intensity)

    class Meta:
        ordering = ("site_id", "hour")
        constraints = [
            models.UniqueConstraint(fields=("site", "hour"), name="%(app_label)s_%(class)s_unique_site_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.site_id}@{self.hour:%Y-%m-%d %H:00} {self.g_per_kwh} g/kWh"


class ProviderPue(models.Model):
    """A cloud provider's published fleet-wide power usage effectiveness: cloud kWh = measured GPU kWh × PUE."""

    provider_kind = models.CharField(max_length=16, choices=ProviderKind.choices, unique=True)
    pue = models.DecimalField(max_digits=4, decimal_places=3, validators=[MinValueValidator(1)])
    source = models.CharField(max_length=200, help_text="Where the provider publishes it, and for which year.")

    class Meta:
        ordering = ("provider_kind",)
        verbose_name = "provider PUE"
        constraints = [
            models.CheckConstraint(condition=Q(pue__gte=1), name="%(app_label)s_%(class)s_pue_gte_1"),
            models.CheckConstraint(
                condition=~Q(provider_kind=ProviderKind.ONPREM), name="%(app_label)s_%(class)s_cloud_only"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider_kind} PUE {self.pue}"
