"""Budget alerts: once per threshold per month, forecast alerts, failed sends retried, concurrent runs."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection

from billing import selectors
from billing.budgets import budget_alerts_check
from billing.choices import BudgetAlertKind
from billing.models import Budget, BudgetAlert
from billing.money import usd_cents
from devtools.demo.billing import demo_budgets_seed
from tests.billing.test_selectors import ledger_day
from tests.factories import ProjectFactory, TeamFactory

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def budget():
    team = TeamFactory(name="Research")
    return Budget.objects.create(
        team=team, monthly_usd=D("1000"), alert_on_forecast=False, recipients=["lead@example.com"]
    )


def test_crossing_80_sends_once_then_100_sends_one_more(budget):
    ledger_day(day=date(2026, 4, 10), team=budget.team, compute="810")
    sent = budget_alerts_check(today=date(2026, 4, 28))
    assert [(a.kind, a.threshold_pct) for a in sent] == [(BudgetAlertKind.THRESHOLD, 80)]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["lead@example.com"] and "80 %" in message.subject and "Research" in message.subject
    assert "$810.00" in message.body and message.alternatives[0][1] == "text/html"
    alert = BudgetAlert.objects.get()
    assert alert.sent_at is not None and alert.spend_usd == D("810.00") and alert.month == date(2026, 4, 1)

    assert budget_alerts_check(today=date(2026, 4, 28)) == []  # again: nothing new
    assert len(mail.outbox) == 1

    ledger_day(day=date(2026, 4, 28), team=budget.team, compute="200")
    sent = budget_alerts_check(today=date(2026, 4, 29))
    assert [a.threshold_pct for a in sent] == [100]
    assert len(mail.outbox) == 2 and "100 %" in mail.outbox[1].subject


def test_next_month_starts_over(budget):
    ledger_day(day=date(2026, 4, 10), team=budget.team, compute="900")
    ledger_day(day=date(2026, 5, 2), team=budget.team, compute="850")
    budget_alerts_check(today=date(2026, 4, 30))
    budget_alerts_check(today=date(2026, 5, 1))  # May so far: nothing
    assert len(mail.outbox) == 1
    sent = budget_alerts_check(today=date(2026, 5, 2))
    assert [(a.month, a.threshold_pct) for a in sent] == [(date(2026, 5, 1), 80)]
    assert len(mail.outbox) == 2


def test_the_last_hours_of_a_month_are_checked_after_midnight(budget):
    # The 23:00 hour of April 30 is written to the ledger after midnight: the 00:xx and 01:xx runs of May 1 still
    # check April; from 02:00 on, only May.
    ledger_day(day=date(2026, 4, 10), team=budget.team, compute="790")
    assert budget_alerts_check(now=datetime(2026, 4, 30, 23, 10, tzinfo=UTC)) == []
    ledger_day(day=date(2026, 4, 30), team=budget.team, compute="15")  # 805: 80 % crossed in the last hour
    sent = budget_alerts_check(now=datetime(2026, 5, 1, 0, 10, tzinfo=UTC))
    assert [(a.month, a.threshold_pct) for a in sent] == [(date(2026, 4, 1), 80)]
    assert "2026-04" in mail.outbox[0].subject and "$805.00" in mail.outbox[0].body
    assert budget_alerts_check(now=datetime(2026, 5, 1, 1, 10, tzinfo=UTC)) == []  # sent once
    BudgetAlert.objects.all().delete()
    assert budget_alerts_check(now=datetime(2026, 5, 1, 2, 10, tzinfo=UTC)) == []  # April is closed by now


def test_forecast_over_alert_once(budget):
    budget.alert_on_forecast = True
    budget.save()
    ledger_day(day=date(2026, 4, 2), team=budget.team, compute="100")  # 100 in 3 of 30 days
    assert budget_alerts_check(today=date(2026, 4, 3)) == []  # forecast 1,000: not over
    ledger_day(day=date(2026, 4, 3), team=budget.team, compute="10")
    sent = budget_alerts_check(today=date(2026, 4, 3))  # forecast 1,100
    assert [(a.kind, a.threshold_pct) for a in sent] == [(BudgetAlertKind.FORECAST, 0)]
    assert "forecast $1,100.00 is over the $1,000.00 budget" in mail.outbox[0].subject
    assert budget_alerts_check(today=date(2026, 4, 4)) == []
    assert len(mail.outbox) == 1


def test_alert_writes_money_with_thousands_separators_and_percent_to_the_tenth():
    """$26,200 a month, $21,000 spent by 15 April (15 of 30 days): 21,000 / 26,200 = 80.15 % → "80.2 %"; the run
    rate forecast 21,000 / 15 × 30 = $42,000, 160.31 % → "160.3 %". Subject, plain text and HTML all agree."""
    budget = Budget.objects.create(
        team=TeamFactory(name="Vision"), monthly_usd=D("26200"), alert_on_forecast=False, recipients=["v@example.com"]
    )
    ledger_day(day=date(2026, 4, 10), team=budget.team, compute="21000")
    [alert] = budget_alerts_check(today=date(2026, 4, 15))
    assert (alert.threshold_pct, alert.spend_usd, alert.forecast_usd) == (80, D("21000.00"), D("42000.00"))
    [message] = mail.outbox
    assert message.subject == "[Fleetdeck] Budget Vision 2026-04: 80 % of the $26,200.00 budget reached"
    assert "Budget:        $26,200.00\n" in message.body
    assert "Spent so far:  $21,000.00 (80.2 %)\n" in message.body
    assert "Forecast:      $42,000.00 (160.3 %) at the month's run rate" in message.body
    html = message.alternatives[0][0]
    assert '<td align="right">$26,200.00</td>' in html and "$21,000.00 (80.2 %)" in html
    assert "$42,000.00 (160.3 %)" in html and "26200" not in html and "26200" not in message.body


def test_project_budget_counts_its_project_only():
    project = ProjectFactory()
    budget = Budget.objects.create(project=project, monthly_usd=D("100"), recipients=["p@example.com"])
    ledger_day(day=date(2026, 4, 2), team=project.team, compute="500")  # the team, not the project
    ledger_day(day=date(2026, 4, 2), team=project.team, project=project, compute="85")
    sent = budget_alerts_check(today=date(2026, 4, 30))
    assert [(a.budget_id, a.threshold_pct) for a in sent] == [(budget.pk, 80)]
    assert str(project) in mail.outbox[0].subject


def test_failed_send_is_retried_and_never_doubled(budget, settings):
    ledger_day(day=date(2026, 4, 10), team=budget.team, compute="850")
    # A real SMTP connection to a port nothing listens on: refused.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    (failed,) = budget_alerts_check(today=date(2026, 4, 20))
    failed.refresh_from_db()
    assert failed.sent_at is None and "Connection" in failed.last_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    (retried,) = budget_alerts_check(today=date(2026, 4, 21))
    assert retried.pk == failed.pk
    retried.refresh_from_db()
    assert retried.sent_at is not None and retried.last_error == ""
    assert len(mail.outbox) == 1
    assert budget_alerts_check(today=date(2026, 4, 22)) == [] and len(mail.outbox) == 1


def test_no_recipients_keeps_the_alert_pending(budget):
    budget.recipients = []
    budget.save()
    ledger_day(day=date(2026, 4, 10), team=budget.team, compute="850")
    (alert,) = budget_alerts_check(today=date(2026, 4, 20))
    assert alert.sent_at is None and "recipients" in alert.last_error and mail.outbox == []
    budget.recipients = ["late@example.com"]
    budget.save()
    assert len(budget_alerts_check(today=date(2026, 4, 21))) == 1 and mail.outbox[0].to == ["late@example.com"]


def test_alert_figures_match_the_selectors(budget):
    ledger_day(day=date(2026, 4, 10), team=budget.team, compute="812.345")
    (alert,) = budget_alerts_check(today=date(2026, 4, 28))
    (status,) = selectors.budget_status_list(month=date(2026, 4, 1), today=date(2026, 4, 28))
    # x.xx5 rounds half up, as pages and reports show it (billing.money.usd_cents), not half-even (812.34).
    assert alert.spend_usd == usd_cents(status.spend_usd) == D("812.35")
    assert "$812.35" in mail.outbox[0].body
    assert (
        status.spend_usd
        == selectors.spend_totals(start=date(2026, 4, 1), end=date(2026, 4, 29), teams=[budget.team_id]).total_usd
    )


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_send_once():
    team = TeamFactory()
    Budget.objects.create(team=team, monthly_usd=D("100"), alert_on_forecast=False, recipients=["a@example.com"])
    ledger_day(day=date(2026, 4, 2), team=team, compute="90")
    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait()
            budget_alerts_check(today=date(2026, 4, 20))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(mail.outbox) == 1 and BudgetAlert.objects.count() == 1


def test_task_is_registered_and_runs(budget):
    from billing.tasks.budgets import budget_alerts_check as task

    assert task.name == "billing.tasks.budget_alerts_check"
    ledger_day(day=selectors.utc_today(), team=budget.team, compute="2000")
    assert task.apply().get() == 1
    assert len(mail.outbox) == 1 and "100 %" in mail.outbox[0].subject  # 80 and 100 at once: one alert


def test_beat_entry(db):
    from django_celery_beat.models import PeriodicTask

    from billing.schedules import billing_schedules_sync

    billing_schedules_sync()
    entry = PeriodicTask.objects.get(task="billing.tasks.budget_alerts_check")
    assert entry.queue == "billing" and entry.interval.every == 3600


def test_demo_budgets_seed(budget):
    busy, idle = TeamFactory(), TeamFactory()
    ledger_day(day=date(2026, 4, 10), team=busy, compute="1000")  # forecast 3,000 on the 10th
    created = demo_budgets_seed(today=date(2026, 4, 10))
    amounts = {b.team_id: b.monthly_usd for b in created}
    assert amounts == {busy.pk: D("3300"), idle.pk: D("100")}  # the existing budget is kept
    assert Budget.objects.get(team=busy).recipients == [f"{busy.slug}-lead@example.com"]
    assert demo_budgets_seed(today=date(2026, 4, 10)) == []


@pytest.mark.parametrize(("value", "cents"), [("12.345", "12.35"), ("12.335", "12.34"), ("0.005", "0.01")])
def test_money_rounds_half_up_to_the_cent(value, cents):
    assert usd_cents(D(value)) == D(cents)
