"""The demo's SMTP sink keeps what Django's real SMTP backend sends as .eml files."""

import socket
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from django.core.mail import EmailMultiAlternatives, get_connection

from devtools.management.commands.mailsink import MaildirHandler


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_message_sent_over_smtp_is_saved_as_eml(tmp_path):
    logged = []
    port = _free_port()
    controller = Controller(MaildirHandler(tmp_path, logged.append), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=port)
        message = EmailMultiAlternatives(
            "Weekly cost report", "Total $12.34", "fleetdeck@localhost", ["fin@example.com"]
        )
        message.attach_alternative("<p>Total $12.34</p>", "text/html")
        assert connection.send_messages([message]) == 1
    finally:
        controller.stop()
    (saved,) = tmp_path.glob("*.eml")
    parsed = message_from_bytes(saved.read_bytes(), policy=policy.default)
    assert parsed["subject"] == "Weekly cost report"
    assert parsed.get_body(("plain",)).get_content().strip() == "Total $12.34"
    assert "fin@example.com" in logged[0] and str(saved) in logged[0]
