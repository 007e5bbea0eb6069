"""Budget alerts: once per budget, month and threshold (and once for "forecast over"), by email.

A run computes every budget's month-to-date spend and run-rate forecast with the same selectors the spend page
and the reports use. Of the thresholds crossed only the highest is due: it gets its ``BudgetAlert`` row (the
unique key is what makes an alert go out once, even when two runs overlap) and is emailed to the budget's
recipients; spend that jumps past 80 % and 100 % at once sends the 100 % alert only, and the 80 % one is never
sent later. A failed send keeps ``sent_at`` empty with ``last_error`` and is retried by the next run; an alert
with ``sent_at`` is never sent again. Each month starts over; the previous month is still checked during the
first two hours of a month (its last hour is written to the ledger after midnight). Amounts are rounded to
the cent half up, as everywhere money is displayed (billing.money.usd_cents), and written with thousands
separators in the subject and body (core.figures.money_text: "$26,200.00").
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing import selectors
from billing.choices import BudgetAlertKind
from billing.models import Budget, BudgetAlert
from billing.money import usd_cents
from core.figures import money_text
from core.validators import one_line

logger = logging.getLogger(__name__)
# The ledger writes an hour's rows after it ends (and recomputes the last two hours every run), so the last
# hours of a month land after midnight: the previous month is checked while now − this is still in it.
PREVIOUS_MONTH_GRACE = timedelta(hours=2)


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
    """The alert email (plain text and HTML) to the budget's recipients; its subject is on one line even when a
    team name stored before names were validated holds a line break."""
    budget = status.budget
    if alert.kind == BudgetAlertKind.FORECAST:
        headline = f"forecast ${money_text(status.forecast_usd)} is over the ${money_text(budget.monthly_usd)} budget"
    else:
        headline = f"{alert.threshold_pct} % of the ${money_text(budget.monthly_usd)} budget reached"
    context = {"alert": alert, "status": status, "budget": budget, "headline": headline, "label": status.label}
    message = EmailMultiAlternatives(
        subject=one_line(f"[Fleetdeck] Budget {status.label} {alert.month:%Y-%m}: {headline}"),
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
            defaults={"spend_usd": usd_cents(status.spend_usd), "forecast_usd": usd_cents(status.forecast_usd)},
        )
        if alert.sent_at is not None:
            return None
        alert.spend_usd, alert.forecast_usd = usd_cents(status.spend_usd), usd_cents(status.forecast_usd)
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


def budget_alerts_check(*, today: date | None = None, now: datetime | None = None) -> list[BudgetAlert]:
    """Send the alerts every budget calls for this month (and for the previous month while ``now`` −
    PREVIOUS_MONTH_GRACE is still in it); return those attempted in this run (sent or failed).

    ``today`` alone (tests, a day's check) checks that day's month only; without either, ``now`` is the clock.
    """
    if today is None:
        now = now or datetime.now(UTC)
        today = now.astimezone(UTC).date()
    month = selectors.month_start_of(today)
    budgets = list(Budget.objects.select_related("team", "project__team").order_by("pk"))
    if not budgets:
        return []
    checks = []
    if now is not None:
        earlier = (now - PREVIOUS_MONTH_GRACE).astimezone(UTC).date()
        if earlier < month:  # the first hours of a month: the last hours of the previous one came in late
            checks.append((selectors.month_start_of(earlier), month - timedelta(days=1)))
    checks.append((month, today))
    attempted = []
    for check_month, check_today in checks:
        spend = selectors.budget_spend(budgets=budgets, start=check_month, end=check_today + timedelta(days=1))
        for budget in budgets:
            status = selectors.budget_status(
                budget=budget, spend_usd=spend[budget.pk], month=check_month, today=check_today
            )
            for kind, threshold_pct in budget_alerts_due(status):
                alert = _alert_send(budget=budget, kind=kind, threshold_pct=threshold_pct, status=status)
                if alert is not None:
                    attempted.append(alert)
    return attempted
