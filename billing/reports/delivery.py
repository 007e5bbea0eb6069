"""Sending reports exactly once per subscription and period.

How "exactly once" holds:

* ``report_deliveries_due`` inserts one ``ReportDelivery`` row per subscription and period with
  ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` against the unique (subscription, period_start) constraint, and
  returns only the rows it inserted: a second beat fire, or a retried ``report_send_due``, creates and enqueues
  nothing.
* ``report_delivery_send`` locks the row (``SELECT … FOR UPDATE``), does nothing if it is already sent, sends,
  and marks it sent in the same transaction. A second task for the same row (a duplicate delivery by the broker,
  a retry after success, two workers at once) waits for the lock and then sees ``sent``.
* Any error while rendering or sending (SMTP, network, a template or data error, a bad header) marks the row
  failed (attempts + 1, last_error, last_attempt_at) and commits that, then re-raises: Celery retries SMTP and
  network errors with backoff; the others fail the task at once. Either way ``report_deliveries_stale`` enqueues
  a failed row again once its last attempt is an hour old, until it has been tried REPORT_ATTEMPTS_MAX times
  (so a delivery whose Celery retries ran out, or that failed for a bug since fixed, is not left behind).

The one window that cannot be closed: the SMTP server has accepted the message, and the worker dies (killed, power
lost, database gone) before the transaction that marks the row sent commits. The row is still pending, the task
is redelivered (acks_late) and the report goes out a second time. No protocol closes this between an SMTP server
and a database (there is no two-phase commit with SMTP); the window is the few milliseconds between the server's
"250 OK" and our COMMIT. Every message carries a Message-ID derived from the delivery, so a mail system or client
that de-duplicates by Message-ID shows the repeat once.
"""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta
from email.mime.image import MIMEImage

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing.choices import DeliveryStatus, ReportPeriod
from billing.models import ReportDelivery, ReportSubscription
from billing.reports.data import report_data
from billing.reports.periods import report_period_last
from billing.reports.render import CHART_CID, RenderedReport, report_render

# What a failed send raises that is worth retrying (smtplib's errors are OSErrors; named for the reader).
REPORT_SEND_ERRORS = (smtplib.SMTPException, OSError)
# A pending delivery whose task has not run for this long is enqueued again (a lost message, a purged queue).
REPORT_REQUEUE_AFTER = timedelta(hours=1)
# A failed delivery is enqueued again (an hour after its last attempt) until it has been tried this many times.
REPORT_ATTEMPTS_MAX = 20
LAST_ERROR_MAX_CHARS = 500


def report_deliveries_due(*, now: datetime) -> list[int]:
    """Create the scheduled deliveries that are due at ``now`` and do not exist yet; return the new rows' ids.

    A subscription is due for the last period of its kind that has ended (weekly: the previous ISO week;
    monthly: the previous calendar month). The unique constraint makes a repeated call create nothing.
    """
    created: list[int] = []
    subscriptions = ReportSubscription.objects.filter(enabled=True).order_by("pk").only("pk", "period")
    periods = {period: report_period_last(period=period, now=now) for period in ReportPeriod.values}
    with connection.cursor() as cursor:
        for subscription in subscriptions:
            start, end = periods[subscription.period]
            cursor.execute(
                f"""
                INSERT INTO {ReportDelivery._meta.db_table}
                    (subscription_id, period_start, period_end, manual, status, attempts, last_error, created)
                VALUES (%s, %s, %s, false, %s, 0, '', %s)
                ON CONFLICT DO NOTHING
                RETURNING id
                """,  # noqa: S608 - the table name is the model's, never input
                [subscription.pk, start, end, DeliveryStatus.PENDING, now],
            )
            row = cursor.fetchone()
            if row is not None:
                created.append(row[0])
    return created


def report_deliveries_stale(*, now: datetime) -> list[int]:
    """Deliveries to enqueue again: pending ones whose task should long have run (its message was lost), and
    failed ones tried fewer than REPORT_ATTEMPTS_MAX times whose last attempt is over an hour old (Celery's
    retries ran out, or the error was not one Celery retries).

    Enqueueing a delivery twice is harmless: the second task finds it sent.
    """
    before = now - REPORT_REQUEUE_AFTER
    pending = Q(status=DeliveryStatus.PENDING, created__lt=before)
    failed = Q(status=DeliveryStatus.FAILED, attempts__lt=REPORT_ATTEMPTS_MAX) & (
        Q(last_attempt_at__lt=before) | Q(last_attempt_at__isnull=True, created__lt=before)
    )
    return list(ReportDelivery.objects.filter(pending | failed).order_by("pk").values_list("pk", flat=True))


def report_deliveries_enqueue(*, delivery_ids: list[int]) -> None:
    """Enqueue ``report_deliver`` for each delivery once the current transaction commits."""
    from billing.tasks.reports import report_deliver  # the tasks module imports this one

    for delivery_id in delivery_ids:
        transaction.on_commit(lambda pk=delivery_id: report_deliver.delay(pk))


def _message_id(delivery: ReportDelivery) -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "fleetdeck.localhost"
    return f"<fleetdeck-report-{delivery.pk}-{delivery.period_start:%Y%m%d}@{domain}>"


def report_message(*, delivery: ReportDelivery, rendered: RenderedReport) -> EmailMultiAlternatives:
    """The email of one delivery: text and HTML alternatives, the chart inline by Content-ID, the CSV attached."""
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(delivery.subscription.recipients),
        headers={"Message-ID": _message_id(delivery), "X-Fleetdeck-Delivery": str(delivery.pk)},
    )
    message.attach_alternative(rendered.html, "text/html")
    chart = MIMEImage(rendered.chart_png, _subtype="png")
    chart.add_header("Content-ID", f"<{CHART_CID}>")
    chart.add_header("Content-Disposition", "inline", filename="spend-per-day.png")
    message.attach(chart)
    message.attach(rendered.filename, rendered.csv_bytes, "text/csv")
    return message


def report_delivery_render(*, delivery: ReportDelivery) -> RenderedReport:
    """Build and render the report of one delivery (its subscription's scope and the delivery's period)."""
    data = report_data(
        subscription=delivery.subscription, period_start=delivery.period_start, period_end=delivery.period_end
    )
    return report_render(data)


def report_delivery_send(*, delivery_id: int, now: datetime | None = None) -> ReportDelivery | None:
    """Send one delivery unless it is already sent (or gone); on any error record it as failed and re-raise.

    The row stays locked from the check to the commit that marks it sent, so concurrent calls send once.
    """
    error: Exception | None = None
    with transaction.atomic():
        delivery = (
            ReportDelivery.objects.select_for_update(of=("self",))
            .select_related("subscription__team")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status == DeliveryStatus.SENT:
            return delivery  # deleted with its subscription while queued, or sent by an earlier run
        now = now or timezone.now()
        delivery.attempts += 1
        delivery.last_attempt_at = now
        try:
            # A savepoint: a database error while rendering rolls back to here, and the failure is still saved.
            with transaction.atomic():
                rendered = report_delivery_render(delivery=delivery)
                report_message(delivery=delivery, rendered=rendered).send()
        except Exception as exc:  # every failure is recorded, not only SMTP's: a render error, BadHeaderError…
            error = exc
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:LAST_ERROR_MAX_CHARS]
        else:
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = now
            delivery.total_usd = rendered.total_usd
            delivery.last_error = ""
        delivery.save(update_fields=["status", "attempts", "last_error", "last_attempt_at", "sent_at", "total_usd"])
    if error is not None:
        raise error
    return delivery


def report_send_now(*, subscription: ReportSubscription, now: datetime | None = None) -> ReportDelivery:
    """'Send now': a manual delivery of the subscription's last complete period, enqueued after commit."""
    start, end = report_period_last(period=subscription.period, now=now or timezone.now())
    with transaction.atomic():
        delivery = ReportDelivery.objects.create(
            subscription=subscription, period_start=start, period_end=end, manual=True
        )
        report_deliveries_enqueue(delivery_ids=[delivery.pk])
    return delivery


def demo_reports_seed() -> ReportSubscription:
    """The demo's weekly whole-fleet report to finance@example.com (idempotent)."""
    subscription, _ = ReportSubscription.objects.get_or_create(
        name="Weekly fleet cost report",
        defaults={"recipients": ["finance@example.com"], "period": ReportPeriod.WEEKLY, "team": None},
    )
    return subscription
