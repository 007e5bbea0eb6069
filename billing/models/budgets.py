"""Budgets with alert thresholds, and report subscriptions with their deliveries."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from billing.choices import BudgetAlertKind, DeliveryStatus, ReportPeriod
from core.validators import validate_one_line
from fleet.scoping import TeamScopedQuerySet


def default_thresholds() -> list[int]:
    return [80, 100]


class Budget(models.Model):
    """A monthly spend limit for a team or a project, with the percentages that send an alert."""

    team = models.ForeignKey("fleet.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="budgets")
    project = models.ForeignKey(
        "fleet.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="budgets"
    )
    monthly_usd = models.DecimalField(max_digits=14, decimal_places=2, validators=[MinValueValidator(1)])
    thresholds_pct = ArrayField(
        models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(1000)]),
        default=default_thresholds,
        help_text="Percentages of the budget that send an alert, e.g. 80, 100.",
    )
    alert_on_forecast = models.BooleanField(default=True, help_text="Alert when the month-end forecast is over.")
    recipients = ArrayField(models.EmailField(), default=list, blank=True, help_text="Who gets the alerts.")
    created = models.DateTimeField(auto_now_add=True)

    team_scope_fields = ("team", "project__team")  # fleet.scoping: the team of a row
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("team__name", "project__name", "pk")
        constraints = [
            models.CheckConstraint(
                condition=(Q(team__isnull=False) & Q(project__isnull=True))
                | (Q(team__isnull=True) & Q(project__isnull=False)),
                name="%(app_label)s_%(class)s_team_xor_project",
                violation_error_message="A budget belongs to a team or to a project, not both.",
            ),
            models.UniqueConstraint(
                fields=("team",), condition=Q(team__isnull=False), name="%(app_label)s_%(class)s_one_per_team"
            ),
            models.UniqueConstraint(
                fields=("project",), condition=Q(project__isnull=False), name="%(app_label)s_%(class)s_one_per_project"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project or self.team}: ${self.monthly_usd}/month"

    def clean(self) -> None:
        if (self.team_id is None) == (self.project_id is None):
            raise ValidationError({"team": "Choose a team or a project (exactly one)."})
        if self.thresholds_pct and len(set(self.thresholds_pct)) != len(self.thresholds_pct):
            raise ValidationError({"thresholds_pct": "Each threshold once."})
        self.thresholds_pct = sorted(self.thresholds_pct or [])


class BudgetAlert(models.Model):
    """One alert of one budget in one month; the unique key is what makes it go out only once."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    month = models.DateField(help_text="First day of the month.")
    kind = models.CharField(max_length=16, choices=BudgetAlertKind.choices)
    threshold_pct = models.PositiveSmallIntegerField(default=0, help_text="0 for a forecast alert.")
    spend_usd = models.DecimalField(max_digits=14, decimal_places=2)
    forecast_usd = models.DecimalField(max_digits=14, decimal_places=2)
    created = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    team_scope_fields = ("budget__team", "budget__project__team")  # fleet.scoping: the team of a row
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("-month", "budget_id", "kind", "threshold_pct")
        constraints = [
            models.UniqueConstraint(
                fields=("budget", "month", "kind", "threshold_pct"), name="%(app_label)s_%(class)s_once_per_month"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.budget} {self.month:%Y-%m} {self.kind} {self.threshold_pct}%"


class ReportSubscription(models.Model):
    """Who gets the cost report, how often, and for what: the whole fleet or one team."""

    name = models.CharField(max_length=100, validators=[validate_one_line])
    recipients = ArrayField(models.EmailField(), help_text="Comma-separated e-mail addresses.")
    period = models.CharField(max_length=16, choices=ReportPeriod.choices, default=ReportPeriod.WEEKLY)
    team = models.ForeignKey(
        "fleet.Team",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="report_subscriptions",
        help_text="Empty: the whole fleet.",
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("name", "pk")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.recipients:
            raise ValidationError({"recipients": "Give at least one recipient."})


class ReportDelivery(models.Model):
    """One report of one subscription for one period; unique per period, so it is sent exactly once."""

    subscription = models.ForeignKey(ReportSubscription, on_delete=models.CASCADE, related_name="deliveries")
    period_start = models.DateField()
    period_end = models.DateField(help_text="Exclusive.")
    manual = models.BooleanField(default=False, help_text="'Send now': outside the schedule.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    total_usd = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When the last send was tried.")
    message_id = models.CharField(
        max_length=255, blank=True, editable=False, help_text="Saved before the first send; every send reuses it."
    )
    resent = models.BooleanField(
        default=False,
        editable=False,
        help_text="Sent again after a send that may have reached the mail server: a possible duplicate, "
        "with the same Message-ID.",
    )

    team_scope_fields = ("subscription__team",)  # fleet.scoping: the team of a row
    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ("-created", "-pk")
        verbose_name_plural = "report deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=("subscription", "period_start"),
                condition=Q(manual=False),
                name="%(app_label)s_%(class)s_once_per_period",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription} {self.period_start}…{self.period_end} {self.status}"
