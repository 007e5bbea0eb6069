"""Exactly-once delivery of reports (billing.reports.delivery, billing.tasks.reports) with Django's locmem
backend: a second beat fire creates nothing, a task run again after success sends nothing, a failed send is
recorded and the retry sends once, and a 'send now' is a separate manual delivery."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from django.core import mail

from billing.choices import DeliveryStatus, ReportPeriod
from billing.models import ReportDelivery, ReportSubscription
from billing.reports.delivery import RESEND_HEADER, report_deliveries_due, report_send_now
from billing.tasks.reports import report_deliver, report_deliveries_enqueue, report_send_due
from config.celery import app as celery_app
from devtools.demo.billing import demo_reports_seed
from tests.billing.test_reports import WEEK_END, WEEK_START, ledger_fill

MONDAY_MORNING = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery():
    """Run tasks enqueued with .delay() in-process (Celery's own eager mode), restoring the setting after."""
    before = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = before


def closed_port() -> int:
    """A local TCP port with nothing listening on it (connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subscription(**kwargs) -> ReportSubscription:
    return ReportSubscription.objects.create(
        **{"name": "Finance weekly", "recipients": ["finance@example.com", "cfo@example.com"], **kwargs}
    )


def test_due_deliveries_are_created_once_per_subscription_and_period():
    weekly = subscription()
    monthly = subscription(name="Monthly", period=ReportPeriod.MONTHLY)
    subscription(name="Off", enabled=False)
    first = report_deliveries_due(now=MONDAY_MORNING)
    assert len(first) == 2
    assert report_deliveries_due(now=MONDAY_MORNING) == []  # beat fired twice
    assert report_deliveries_due(now=MONDAY_MORNING.replace(hour=23)) == []  # later the same day
    rows = {d.subscription_id: d for d in ReportDelivery.objects.all()}
    assert (rows[weekly.pk].period_start, rows[weekly.pk].period_end) == (WEEK_START, WEEK_END)
    assert (rows[monthly.pk].period_start, rows[monthly.pk].period_end) == (
        datetime(2026, 10, 1).date(),
        datetime(2026, 11, 1).date(),
    )
    assert all(d.status == DeliveryStatus.PENDING and not d.manual for d in rows.values())
    # Next week, the weekly subscription is due again; the month is still the same.
    assert len(report_deliveries_due(now=datetime(2026, 11, 30, 6, tzinfo=UTC))) == 1


def test_beat_firing_twice_sends_one_email(eager_celery, django_capture_on_commit_callbacks):
    ledger_fill(start=WEEK_START, days=7)
    subscription()
    with django_capture_on_commit_callbacks(execute=True):
        created = report_send_due()
    with django_capture_on_commit_callbacks(execute=True):
        again = report_send_due()
    assert len(created) == 1 and again == []
    assert len(mail.outbox) == 1
    delivery = ReportDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 1 and delivery.sent_at
    message = mail.outbox[0]
    assert message.to == ["finance@example.com", "cfo@example.com"]
    assert f"{delivery.total_usd:,}" in message.subject


def test_task_run_again_after_success_sends_nothing():
    ledger_fill(start=WEEK_START, days=7)
    delivery = ReportDelivery.objects.create(subscription=subscription(), period_start=WEEK_START, period_end=WEEK_END)
    report_deliver(delivery.pk)
    report_deliver(delivery.pk)  # acks_late redelivery, or a retry of a task that had in fact succeeded
    assert len(mail.outbox) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)


def test_failed_send_is_recorded_and_the_retry_sends_once(settings):
    ledger_fill(start=WEEK_START, days=7)
    delivery = ReportDelivery.objects.create(subscription=subscription(), period_start=WEEK_START, period_end=WEEK_END)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 5
    # Called directly, an autoretry task re-raises the error instead of scheduling the retry.
    with pytest.raises(ConnectionRefusedError):
        report_deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.sent_at) == (DeliveryStatus.FAILED, 1, None)
    assert "ConnectionRefusedError" in delivery.last_error
    message_id = delivery.message_id  # chosen and saved before the first SMTP attempt
    assert message_id.startswith(f"<fleetdeck-report-{delivery.pk}-")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    report_deliver(delivery.pk)  # Celery's retry
    report_deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.SENT, 2, "")
    assert len(mail.outbox) == 1
    # A refused connection delivered nothing: the retry keeps the Message-ID and is no resend.
    assert mail.outbox[0].extra_headers["Message-ID"] == delivery.message_id == message_id
    assert RESEND_HEADER not in mail.outbox[0].extra_headers and not delivery.resent


def test_celery_retries_a_failed_send(settings):
    """Through Celery itself (eager apply): an SMTP error is retried up to max_retries, then the task fails."""
    delivery = ReportDelivery.objects.create(subscription=subscription(), period_start=WEEK_START, period_end=WEEK_END)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 5
    result = report_deliver.apply(args=[delivery.pk], throw=False)  # retries run at once, without the countdown
    assert result.state == "FAILURE" and isinstance(result.result, ConnectionRefusedError)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == report_deliver.max_retries + 1


def test_send_now_is_a_manual_delivery_beside_the_scheduled_one(eager_celery, django_capture_on_commit_callbacks):
    ledger_fill(start=WEEK_START, days=7)
    sub = subscription()
    report_deliveries_due(now=MONDAY_MORNING)
    with django_capture_on_commit_callbacks(execute=True):
        first = report_send_now(subscription=sub, now=MONDAY_MORNING)
        report_deliveries_enqueue(delivery_ids=[first.pk])
    with django_capture_on_commit_callbacks(execute=True):
        report_deliveries_enqueue(delivery_ids=[report_send_now(subscription=sub, now=MONDAY_MORNING).pk])
    assert first.manual and (first.period_start, first.period_end) == (WEEK_START, WEEK_END)
    assert ReportDelivery.objects.filter(manual=True, status=DeliveryStatus.SENT).count() == 2
    assert len(mail.outbox) == 2  # each press of the button sends; the scheduled one is still pending
    assert ReportDelivery.objects.get(manual=False).status == DeliveryStatus.PENDING


def test_stale_pending_delivery_is_enqueued_again_and_sent_once(eager_celery, django_capture_on_commit_callbacks):
    sub = subscription()
    stale = ReportDelivery.objects.create(subscription=sub, period_start=WEEK_START, period_end=WEEK_END)
    ReportDelivery.objects.filter(pk=stale.pk).update(created=datetime(2026, 11, 1, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=True):
        report_send_due()
    with django_capture_on_commit_callbacks(execute=True):
        report_send_due()
    stale.refresh_from_db()
    assert stale.status == DeliveryStatus.SENT
    assert [m.subject.count("week 2026-W47") for m in mail.outbox].count(1) == 1


def test_demo_seed_is_idempotent():
    first, second = demo_reports_seed(), demo_reports_seed()
    assert first.pk == second.pk
    assert first.recipients == ["finance@example.com"] and first.period == ReportPeriod.WEEKLY and first.team is None


def test_delivery_deleted_while_queued_is_skipped():
    delivery = ReportDelivery.objects.create(subscription=subscription(), period_start=WEEK_START, period_end=WEEK_END)
    delivery.subscription.delete()
    report_deliver(delivery.pk)
    assert mail.outbox == []


def test_a_render_error_is_recorded_as_failed_not_left_pending(monkeypatch):
    from django.db import connection

    import billing.reports.delivery as delivery_module

    delivery = ReportDelivery.objects.create(subscription=subscription(), period_start=WEEK_START, period_end=WEEK_END)

    def broken_render(**kwargs):
        with connection.cursor() as cursor:  # a database error inside the render: the transaction is aborted
            cursor.execute("SELECT 1/0")

    monkeypatch.setattr(delivery_module, "report_delivery_render", broken_render)
    with pytest.raises(Exception, match="division by zero"):
        report_deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert "division by zero" in delivery.last_error and delivery.last_attempt_at is not None
    assert mail.outbox == []


def test_failed_deliveries_are_enqueued_again_an_hour_after_their_last_attempt_up_to_a_cap():
    from datetime import timedelta

    from billing.reports.delivery import REPORT_ATTEMPTS_MAX, report_deliveries_stale

    sub = subscription()
    hour_ago = MONDAY_MORNING - timedelta(hours=1, minutes=1)

    def failed(attempts: int, last_attempt_at: datetime, days: int) -> ReportDelivery:
        return ReportDelivery.objects.create(
            subscription=sub,
            period_start=WEEK_START.replace(day=WEEK_START.day - days),
            period_end=WEEK_END,
            status=DeliveryStatus.FAILED,
            attempts=attempts,
            last_attempt_at=last_attempt_at,
        )

    due = failed(9, hour_ago, 0)  # Celery's 8 retries ran out an hour ago
    failed(2, MONDAY_MORNING - timedelta(minutes=5), 1)  # tried just now: Celery may still retry it
    failed(REPORT_ATTEMPTS_MAX, hour_ago, 2)  # given up
    # Left "sending" by a sender that died: an hour later it is enqueued again (its task may be lost too).
    died = failed(1, hour_ago, 3)
    sending_now = failed(1, MONDAY_MORNING - timedelta(minutes=5), 4)
    ReportDelivery.objects.filter(pk__in=[died.pk, sending_now.pk]).update(status=DeliveryStatus.SENDING)
    assert report_deliveries_stale(now=MONDAY_MORNING) == [due.pk, died.pk]
