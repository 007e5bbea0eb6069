"""Budget alerts: once per budget, month and threshold (and once for "forecast over"), by email.

A run computes every budget's month-to-date spend and run-rate forecast with the same selectors the spend page
and the reports use, creates the ``BudgetAlert`` row of each threshold crossed (its unique key is what makes
an alert go out once, even when two runs overlap), and emails the budget's recipients. A failed send keeps
``sent_at`` empty with ``last_error`` and is retried by the next run; an alert with ``sent_at`` is never sent
again. Each month starts over.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Sum
from django.template.loader import render_to_string
from django.utils import timezone

from billing import selectors
from billing.choices import BudgetAlertKind
from billing.models import Budget, BudgetAlert
from fleet.models import Team

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")


def budget_alerts_due(status: selectors.BudgetStatus) -> list[tuple[str, int]]:
    """The (kind, threshold %) alerts a budget's status calls for this month."""
    # Spend that jumps past several thresholds at once sends one alert, for the highest: the lower ones are news
    # no more, and a later run does not send them either (only the highest crossed is ever due).
    due = [(BudgetAlertKind.THRESHOLD, max(status.thresholds_crossed))] if status.thresholds_crossed else []
    budget = status.budget
    # A forecast warning is news only while spend is still under the budget.
    if budget.alert_on_forecast and status.forecast_usd > budget.monthly_usd > status.spend_usd:
        due.append((BudgetAlertKind.FORECAST, 0))
    return due


def budget_alert_email(*, alert: BudgetAlert, status: selectors.BudgetStatus) -> EmailMultiAlternatives:
    """The alert email (plain text and HTML) to the budget's recipients."""
    budget = status.budget
    if alert.kind == BudgetAlertKind.FORECAST:
        headline = f"forecast ${status.forecast_usd.quantize(CENT)} is over the ${budget.monthly_usd} budget"
    else:
        headline = f"{alert.threshold_pct} % of the ${budget.monthly_usd} budget reached"
    context = {"alert": alert, "status": status, "budget": budget, "headline": headline, "label": status.label}
    message = EmailMultiAlternatives(
        subject=f"[Fleetdeck] Budget {status.label} {alert.month:%Y-%m}: {headline}",
        body=render_to_string("billing/spend_budget_alert_email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(budget.recipients),
    )
    message.attach_alternative(render_to_string("billing/spend_budget_alert_email.html", context), "text/html")
    return message


def _alert_send(*, budget: Budget, kind: str, threshold_pct: int, status: selectors.BudgetStatus) -> BudgetAlert | None:
    """Create (or find) one alert row under a row lock and send it unless it was sent; None when already sent."""
    with transaction.atomic():
        alert, _ = BudgetAlert.objects.select_for_update().get_or_create(
            budget=budget,
            month=status.month,
            kind=kind,
            threshold_pct=threshold_pct,
            defaults={"spend_usd": status.spend_usd.quantize(CENT), "forecast_usd": status.forecast_usd.quantize(CENT)},
        )
        if alert.sent_at is not None:
            return None
        alert.spend_usd, alert.forecast_usd = status.spend_usd.quantize(CENT), status.forecast_usd.quantize(CENT)
        if not budget.recipients:
            alert.last_error = "The budget has no recipients; add some and the next run sends it."
        else:
            try:
                budget_alert_email(alert=alert, status=status).send()
            except OSError as exc:  # smtplib.SMTPException and socket errors are OSErrors
                alert.last_error = f"{type(exc).__name__}: {exc}"[:500]
                logger.warning("budget alert %s not sent: %s", alert, alert.last_error)
            else:
                alert.sent_at, alert.last_error = timezone.now(), ""
        alert.save(update_fields=["spend_usd", "forecast_usd", "sent_at", "last_error"])
        return alert


def budget_alerts_check(*, today: date | None = None) -> list[BudgetAlert]:
    """Send the alerts every budget calls for this month; return those attempted in this run (sent or failed)."""
    today = today or selectors.utc_today()
    month = selectors.month_start_of(today)
    budgets = list(Budget.objects.select_related("team", "project__team").order_by("pk"))
    if not budgets:
        return []
    spend = selectors.budget_spend(budgets=budgets, start=month, end=today + timedelta(days=1))
    attempted = []
    for budget in budgets:
        status = selectors.budget_status(budget=budget, spend_usd=spend[budget.pk], month=month, today=today)
        for kind, threshold_pct in budget_alerts_due(status):
            alert = _alert_send(budget=budget, kind=kind, threshold_pct=threshold_pct, status=status)
            if alert is not None:
                attempted.append(alert)
    return attempted


def demo_budgets_seed(*, headroom: Decimal = Decimal("1.10"), today: date | None = None) -> list[Budget]:
    """Give every team without a budget one of this month's forecast × ``headroom`` (rounded up to $100;
    at least $100), alerting at 80 % and 100 % to ``<team-slug>-lead@example.com``: for the demo."""
    today = today or selectors.utc_today()
    month = selectors.month_start_of(today)
    teams = list(Team.objects.filter(budgets__isnull=True).order_by("pk"))
    spend = dict(
        selectors.ledger_day_rows(start=month, end=today + timedelta(days=1), teams=[t.pk for t in teams])
        .values_list("team_id")
        .annotate(s=Sum("total_usd"))
    )
    created = []
    for team in teams:
        forecast = selectors.month_forecast_usd(
            month_start=month, spent_usd=spend.get(team.pk, Decimal(0)), today=today
        )
        amount = max(Decimal(100), ((forecast * headroom) / 100).to_integral_value(rounding=ROUND_CEILING) * 100)
        created.append(
            Budget.objects.create(
                team=team, monthly_usd=amount, thresholds_pct=[80, 100], recipients=[f"{team.slug}-lead@example.com"]
            )
        )
    return created
