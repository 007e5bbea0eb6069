"""``manage.py mailsink``: a local SMTP server that keeps every message it receives as an .eml file.

The demo points Django's SMTP backend at it, so budget alerts and cost reports travel through real SMTP and can
be opened in any mail client afterwards. Not for production: it accepts mail from anyone who can reach it.
"""

from __future__ import annotations

import time
from email import message_from_bytes, policy
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class MaildirHandler:
    """aiosmtpd handler: write each message to ``directory`` and log who it was for."""

    def __init__(self, directory: Path, log) -> None:
        self.directory = directory
        self.log = log
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.count += 1
        path = self.directory / f"{time.strftime('%Y%m%dT%H%M%S')}-{self.count:04d}.eml"
        path.write_bytes(envelope.content)
        subject = str(message_from_bytes(envelope.content, policy=policy.default)["subject"] or "").strip()
        self.log(f"mail to {', '.join(envelope.rcpt_tos)}: {subject!r} -> {path}")
        return "250 Message accepted for delivery"


class Command(BaseCommand):
    help = "Run a local SMTP server that saves received mail as .eml files (for the demo)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=1025)
        parser.add_argument("--dir", default=str(settings.DATA_DIR / "mail"), help="Where to write the .eml files.")

    def handle(self, *args, host, port, dir, **options):
        from aiosmtpd.controller import Controller

        directory = Path(dir)
        directory.mkdir(parents=True, exist_ok=True)
        controller = Controller(MaildirHandler(directory, self.stdout.write), hostname=host, port=port)
        controller.start()
        self.stdout.write(f"SMTP sink on {host}:{port}, saving to {directory}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()
