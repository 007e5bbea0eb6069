"""``manage.py import_focus FILE [--skip-unknown-accounts]``: what AWS and GCP billed, from a FOCUS 1.0 export."""

from django.core.management.base import BaseCommand, CommandError

from billing.focus.importer import FocusImportError, focus_import
from core.figures import money_text


class Command(BaseCommand):
    help = (
        "Import a FOCUS 1.0 billing export (CSV or gzip CSV: AWS Data Exports, GCP's FOCUS view, any FOCUS CSV) "
        "as billed costs per provider account and UTC day (compute instance usage, EffectiveCost)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the FOCUS CSV (.csv or .csv.gz).")
        parser.add_argument(
            "--skip-unknown-accounts",
            action="store_true",
            help="Leave out rows of accounts no provider has (listed) instead of refusing the file.",
        )

    def handle(self, *args, file, skip_unknown_accounts, **options):
        try:
            report = focus_import(file=file, skip_unknown_accounts=skip_unknown_accounts)
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        except FocusImportError as exc:
            raise CommandError(f"Nothing imported:\n{exc}") from None
        for row in report.providers:
            self.stdout.write(
                f"{row.provider_name}: {row.days} days ({row.first_day} – {row.last_day}), ${money_text(row.usd)} "
                f"from {row.rows} rows"
            )
        self.stdout.write(
            f"{report.rows} rows read, {report.counted} counted, {report.skipped} not compute instance usage, "
            f"{report.other_providers} of other providers."
        )
        for account in report.skipped_unknown_accounts:
            self.stdout.write(f"Skipped: no provider for {account}")
