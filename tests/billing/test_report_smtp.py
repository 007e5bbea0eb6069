"""Reports through a real SMTP server (aiosmtpd on a free local port): the received MIME message, a temporary
SMTP failure followed by a successful retry, and two workers delivering the same report at once."""

from __future__ import annotations

import asyncio
import csv
import email
import io
import socket
import threading
import time
from decimal import Decimal
from email import policy

import pytest
from aiosmtpd.controller import Controller
from django.db import connection

from billing.choices import DeliveryStatus
from billing.models import ReportDelivery, ReportSubscription
from billing.reports.delivery import report_delivery_send
from billing.reports.render import CHART_CID
from billing.tasks.reports import report_deliver
from tests.billing.test_reports import PNG_MAGIC, WEEK_END, WEEK_START, ledger_fill

LOCK_WAIT_TIMEOUT_S = 10


class RecordingHandler:
    """Keeps every accepted message; can refuse the first N with 451 and hold a message until a condition."""

    def __init__(self, *, refuse_first: int = 0, hold=None):
        self.messages: list[bytes] = []
        self.refuse_left = refuse_first
        self.hold = hold
        self.hold_result = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.refuse_left:
            self.refuse_left -= 1
            return "451 4.3.0 Temporary failure, try again later"
        if self.hold is not None:
            self.hold_result = await asyncio.to_thread(self.hold)
        self.messages.append(envelope.original_content or envelope.content)
        return "250 2.0.0 OK"


@pytest.fixture
def smtp_server(settings):
    """Start an SMTP server on a free port and point Django's SMTP backend at it; yields a function that
    installs a handler."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 10
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""

    def use(new_handler: RecordingHandler) -> RecordingHandler:
        controller.handler = new_handler  # each new SMTP session is built with the controller's handler
        return new_handler

    controller.use = use
    controller.recorder = handler
    yield controller
    controller.stop()


def delivery_for_week() -> ReportDelivery:
    subscription = ReportSubscription.objects.create(name="Finance", recipients=["finance@example.com"])
    return ReportDelivery.objects.create(subscription=subscription, period_start=WEEK_START, period_end=WEEK_END)


@pytest.mark.django_db
def test_report_received_by_a_real_smtp_server_parses_as_expected(smtp_server):
    ledger_fill(start=WEEK_START, days=7)
    delivery = delivery_for_week()
    report_deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    [raw] = smtp_server.recorder.messages
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message.get_content_type() == "multipart/mixed"
    assert message["To"] == "finance@example.com"
    assert message["Message-ID"].startswith(f"<fleetdeck-report-{delivery.pk}-")
    parts = list(message.iter_parts())
    alternative = parts[0]
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = list(alternative.iter_parts())
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    total = f"{delivery.total_usd:,}"
    assert total in text.get_content() and total in html.get_content() and total in message["Subject"]
    # An ASCII subject arrives unfolded, exactly as written (a non-ASCII one is encoded and folded).
    assert message["Subject"].startswith("Fleetdeck cost report: Whole fleet, week ")
    assert b"\nSubject: Fleetdeck cost report" in raw
    assert f'src="cid:{CHART_CID}"' in html.get_content()
    [image] = [p for p in parts if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == f"<{CHART_CID}>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content().startswith(PNG_MAGIC)
    [attachment] = [p for p in parts if p.get_content_type() == "text/csv"]
    assert attachment.get_content_disposition() == "attachment" and attachment.get_filename().endswith(".csv")
    content = attachment.get_content()
    rows = list(csv.DictReader(io.StringIO(content if isinstance(content, str) else content.decode())))
    total_row = next(r for r in rows if r["section"] == "total")
    assert Decimal(total_row["total_usd"]) == delivery.total_usd > 0


@pytest.mark.django_db
def test_temporary_smtp_failure_then_success_sends_one_email(smtp_server):
    handler = smtp_server.use(RecordingHandler(refuse_first=1))
    delivery = delivery_for_week()
    with pytest.raises(Exception, match="Temporary failure") as caught:
        report_deliver(delivery.pk)
    assert isinstance(caught.value, OSError)  # smtplib errors are OSErrors: Celery's autoretry covers them
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert "451" in delivery.last_error
    report_deliver(delivery.pk)
    report_deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.SENT, 2, "")
    assert len(handler.messages) == 1


def _another_session_waits_on_a_lock() -> bool:
    """Poll PostgreSQL until some session of this database waits on a lock (the second deliverer)."""
    deadline = time.monotonic() + LOCK_WAIT_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    return True
            time.sleep(0.05)
        return False
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_deliveries_of_one_report_send_one_email(smtp_server):
    # The SMTP server holds the first message until the second deliverer is seen waiting for the row lock,
    # so the two really overlap.
    handler = smtp_server.use(RecordingHandler(hold=_another_session_waits_on_a_lock))
    delivery = delivery_for_week()
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def deliver():
        try:
            start.wait()
            report_delivery_send(delivery_id=delivery.pk)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert handler.hold_result is True, "the second delivery never waited for the row lock"
    assert len(handler.messages) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)
