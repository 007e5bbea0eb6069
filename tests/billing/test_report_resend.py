"""A report sender killed (SIGKILL) after the SMTP server accepted the message, before it recorded the delivery as
sent: the rerun (the task redelivered, acks_late) sends it again with the same Message-ID, marked as a resend, and
the database holds one delivery. The sender is a real process sending to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import email
import os
import signal
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

from billing.choices import DeliveryStatus
from billing.models import ReportDelivery
from billing.reports.delivery import RESEND_HEADER
from billing.tasks.reports import report_deliver
from config.celery import app as celery_app
from devtools.bench.common import connection_database_url
from tests.billing.test_report_smtp import delivery_for_week, smtp_server  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
SENDER = (
    "import sys, django; django.setup(); "
    "from billing.tasks.reports import report_deliver; report_deliver(int(sys.argv[1]))"
)
SENDER_TIMEOUT_S = 60
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class KillAfterAccepting:
    """Accepts every message; when the first sender says QUIT (its message already answered 250), kills it with
    SIGKILL before replying, so it dies between SMTP's acceptance and its own commit."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.victim: subprocess.Popen | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 2.0.0 OK"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        victim, self.victim = self.victim, None
        if victim is not None:
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, SENDER_TIMEOUT_S)
        return "221 Bye"


def sender(delivery_id: int, port: int) -> subprocess.Popen:
    """A separate process running the report_deliver task body against the test database and the SMTP server."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": connection_database_url(),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
    }
    return subprocess.Popen([sys.executable, "-c", SENDER, str(delivery_id)], cwd=ROOT, env=env)


def test_sender_killed_after_smtp_accepted_resends_with_the_same_message_id(
    smtp_server,  # noqa: F811 - the imported fixture
):
    handler, port = smtp_server.use(KillAfterAccepting()), smtp_server.port
    # A killed worker child's task is redelivered: that is what makes the rerun below happen in production.
    assert celery_app.conf.task_acks_late and celery_app.conf.task_reject_on_worker_lost
    delivery = delivery_for_week()
    handler.victim = process = sender(delivery.pk, port)
    assert process.wait(timeout=SENDER_TIMEOUT_S) == -signal.SIGKILL
    [first] = handler.messages
    delivery.refresh_from_db()
    # The intent was recorded before SMTP: the row says "sending", with the Message-ID the server got.
    assert (delivery.status, delivery.attempts, delivery.resent) == (DeliveryStatus.SENDING, 1, False)
    assert first["Message-ID"] == delivery.message_id != ""
    assert first[RESEND_HEADER] is None

    report_deliver.apply(args=[delivery.pk], throw=True)  # the redelivered task
    report_deliver.apply(args=[delivery.pk], throw=True)  # and once more: sent, so nothing

    first_again, second = handler.messages
    assert second["Message-ID"] == first["Message-ID"] == delivery.message_id
    assert second[RESEND_HEADER] == "yes"
    assert second["Subject"] == first["Subject"]
    assert ReportDelivery.objects.count() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.resent) == (DeliveryStatus.SENT, 2, True)
    assert delivery.message_id == first["Message-ID"]
