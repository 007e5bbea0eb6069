"""Sending reports exactly once per subscription and period.

How "exactly once" holds:

* ``report_deliveries_due`` inserts one ``ReportDelivery`` row per subscription and period with
  ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` against the unique (subscription, period_start) constraint, and
  returns only the rows it inserted: a second beat fire, or a retried ``report_send_due``, creates and enqueues
  nothing.
* ``report_delivery_send`` holds a PostgreSQL advisory lock on the delivery from its first read to its last write,
  so a second task for the same row (a duplicate delivery by the broker, a retry after success, two workers at
  once) waits and then finds it sent. A killed sender's lock goes with its database session.
* Intent is recorded before SMTP: the row is committed as ``sending``, with the Message-ID it keeps for good,
  before the SMTP transaction starts, and committed as ``sent`` after the server accepted the message. A sender
  that finds the row still ``sending`` knows that an earlier sender died in between, maybe after the server had
  accepted: it sends again with the same Message-ID, a ``X-Fleetdeck-Resent: yes`` header, and records ``resent``.
* Any error while rendering or sending (SMTP, network, a template or data error) marks the row failed (attempts +
  1, last_error, last_attempt_at) and commits that, then re-raises: Celery retries SMTP and network errors with
  backoff; the others fail the task at once. Either way ``report_deliveries_stale`` enqueues a failed row again
  once its last attempt is an hour old, until it has been tried REPORT_ATTEMPTS_MAX times (so a delivery whose
  Celery retries ran out, or that failed for a bug since fixed, is not left behind); a row left ``sending`` (its
  sender died and the task was lost too) is enqueued again an hour after that attempt.

What remains: the window between the SMTP server's "250 OK" and our COMMIT of ``sent`` (a few milliseconds, plus
the QUIT exchange). A sender killed there makes the redelivered task (acks_late) send the report once more. No
protocol closes this between an SMTP server and a database (there is no two-phase commit with SMTP), but the
repeat carries the first message's Message-ID, so mail systems and clients that de-duplicate by Message-ID show it
once, and it is marked (the header, and ``resent`` on the row) so anyone can tell it is a possible duplicate.
"""

from __future__ import annotations

import secrets
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
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
# pg_advisory_lock(key, delivery id): one sender of a delivery at a time, across the commits of one send.
DELIVERY_LOCK_KEY = 0x46_44_52_50  # "FDRP"
# The header that marks a message sent again after a send that may have reached the server.
RESEND_HEADER = "X-Fleetdeck-Resent"


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
                    (subscription_id, period_start, period_end, manual, status, attempts, last_error, message_id,
                     resent, created)
                VALUES (%s, %s, %s, false, %s, 0, '', '', false, %s)
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
    """Deliveries to enqueue again: pending ones whose task should long have run (its message was lost), sending
    ones whose sender died over an hour ago and whose task was not redelivered, and failed ones tried fewer than
    REPORT_ATTEMPTS_MAX times whose last attempt is over an hour old (Celery's retries ran out, or the error was
    not one Celery retries).

    Enqueueing a delivery twice is harmless: the second task finds it sent.
    """
    before = now - REPORT_REQUEUE_AFTER
    pending = Q(status=DeliveryStatus.PENDING, created__lt=before)
    sending = Q(status=DeliveryStatus.SENDING, last_attempt_at__lt=before)
    failed = Q(status=DeliveryStatus.FAILED, attempts__lt=REPORT_ATTEMPTS_MAX) & (
        Q(last_attempt_at__lt=before) | Q(last_attempt_at__isnull=True, created__lt=before)
    )
    return list(ReportDelivery.objects.filter(pending | sending | failed).order_by("pk").values_list("pk", flat=True))


def _message_id(delivery: ReportDelivery) -> str:
    """A new Message-ID for a delivery (chosen once, then stored): its id, and a random part so that a database
    started afresh (the demo's) never repeats an earlier report's. Short enough not to be folded."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "fleetdeck.localhost"
    return f"<fleetdeck-report-{delivery.pk}-{secrets.token_hex(6)}@{domain}>"


def report_message(*, delivery: ReportDelivery, rendered: RenderedReport, resend: bool) -> EmailMultiAlternatives:
    """The email of one delivery: text and HTML alternatives, the chart inline by Content-ID, the CSV attached;
    with the delivery's stored Message-ID, and marked as a possible duplicate when ``resend``."""
    headers = {"Message-ID": delivery.message_id, "X-Fleetdeck-Delivery": str(delivery.pk)}
    if resend:
        headers[RESEND_HEADER] = "yes"
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(delivery.subscription.recipients),
        headers=headers,
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


@contextmanager
def _delivery_lock(delivery_id: int) -> Iterator[None]:
    """Hold the session-level advisory lock of one delivery (waiting for it): one sender at a time."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [DELIVERY_LOCK_KEY, delivery_id])
        try:
            yield
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [DELIVERY_LOCK_KEY, delivery_id])


def _delivery_claim(*, delivery_id: int, now: datetime) -> tuple[ReportDelivery | None, bool]:
    """Commit the intent to send: the row as ``sending`` with its Message-ID (kept from an earlier attempt, or
    chosen now), one more attempt. Returns the row (None if gone; unchanged if sent) and whether this send is a
    resend: an earlier sender left the row ``sending``, so the server may have the message already."""
    with transaction.atomic():
        delivery = ReportDelivery.objects.select_related("subscription__team").filter(pk=delivery_id).first()
        if delivery is None or delivery.status == DeliveryStatus.SENT:
            return delivery, False
        resend = delivery.status == DeliveryStatus.SENDING
        delivery.message_id = delivery.message_id or _message_id(delivery)
        delivery.status = DeliveryStatus.SENDING
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.resent = delivery.resent or resend
        delivery.save(update_fields=["message_id", "status", "attempts", "last_attempt_at", "resent"])
    return delivery, resend


def report_delivery_send(*, delivery_id: int, now: datetime | None = None) -> ReportDelivery | None:
    """Send one delivery unless it is already sent (or gone); on any error record it as failed and re-raise.

    ``sending`` and the Message-ID are committed before the SMTP transaction, ``sent`` after it (see the module
    docstring); the delivery's advisory lock is held throughout, so concurrent calls send once.
    """
    with _delivery_lock(delivery_id):
        delivery, resend = _delivery_claim(delivery_id=delivery_id, now=now or timezone.now())
        if delivery is None or delivery.status == DeliveryStatus.SENT:
            return delivery  # deleted with its subscription while queued, or sent by an earlier run
        try:
            # A savepoint (in a test's transaction): a database error while rendering rolls back to here.
            with transaction.atomic():
                rendered = report_delivery_render(delivery=delivery)
            report_message(delivery=delivery, rendered=rendered, resend=resend).send()
        except Exception as exc:  # every failure is recorded, not only SMTP's: a render error, a bad header…
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = f"{type(exc).__name__}: {exc}"[:LAST_ERROR_MAX_CHARS]
            delivery.save(update_fields=["status", "last_error"])
            raise
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = delivery.last_attempt_at
        delivery.total_usd = rendered.total_usd
        delivery.last_error = ""
        delivery.save(update_fields=["status", "sent_at", "total_usd", "last_error"])
    return delivery


def report_send_now(*, subscription: ReportSubscription, now: datetime | None = None) -> ReportDelivery:
    """'Send now': a new manual delivery of the subscription's last complete period. The caller enqueues it
    (billing.tasks.reports.report_deliveries_enqueue, after commit): services never enqueue tasks."""
    start, end = report_period_last(period=subscription.period, now=now or timezone.now())
    return ReportDelivery.objects.create(subscription=subscription, period_start=start, period_end=end, manual=True)
