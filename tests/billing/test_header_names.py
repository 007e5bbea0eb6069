"""Rows stored before names were validated (a team named with CR/LF) still get their report and their budget
alert: subjects are built on one line, so sending never raises BadHeaderError and nothing is injected."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core import mail

from billing.budgets import budget_alerts_check
from billing.choices import DeliveryStatus
from billing.models import Budget, BudgetAlert, ReportDelivery, ReportSubscription
from billing.tasks.reports import report_deliver
from fleet.models import Team
from tests.billing.test_reports import WEEK_END, WEEK_START
from tests.billing.test_selectors import ledger_day
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db
BAD_NAME = "Ops\r\nBcc: attacker@example.com\u2028x"


def old_bad_team() -> Team:
    """A team whose name has line breaks, written past the validators as an older version could have."""
    team = TeamFactory()
    Team.objects.filter(pk=team.pk).update(name=BAD_NAME)
    team.refresh_from_db()
    return team


def assert_one_line_subject(message, *, to: list[str]) -> None:
    mime = message.message()
    assert "\r" not in message.subject and "\n" not in message.subject and "\u2028" not in message.subject
    assert "Ops Bcc: attacker@example.com x" in mime["Subject"]
    assert mime["Bcc"] is None and message.recipients() == to


def test_report_of_a_team_named_with_line_breaks_is_sent(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    subscription = ReportSubscription.objects.create(
        name="Weekly", recipients=["finance@example.com"], team=old_bad_team()
    )
    delivery = ReportDelivery.objects.create(subscription=subscription, period_start=WEEK_START, period_end=WEEK_END)
    report_deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.SENT, "")
    [message] = mail.outbox
    assert_one_line_subject(message, to=["finance@example.com"])


def test_budget_alert_of_a_team_named_with_line_breaks_is_sent(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    team = old_bad_team()
    Budget.objects.create(team=team, monthly_usd=Decimal(1000), alert_on_forecast=False, recipients=["l@example.com"])
    ledger_day(day=date(2026, 4, 10), team=team, compute="900")
    [alert] = budget_alerts_check(today=date(2026, 4, 28))
    assert alert.sent_at is not None and BudgetAlert.objects.get().last_error == ""
    [message] = mail.outbox
    assert_one_line_subject(message, to=["l@example.com"])
