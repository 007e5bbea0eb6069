"""``manage.py import_costs [--provider NAME] --from YYYY-MM-DD --to YYYY-MM-DD``: AWS Cost Explorer import."""

from datetime import date, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.core.management.base import BaseCommand, CommandError

from billing.costexplorer import CostExplorerError, cost_explorer_import
from core.figures import money_text
from fleet.choices import ProviderKind
from fleet.models import Provider


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).") from None


class Command(BaseCommand):
    help = "Import what AWS billed per day (and data transfer) from Cost Explorer for the days FROM..TO (inclusive)."

    def add_arguments(self, parser):
        parser.add_argument("--provider", action="append", default=[], help="AWS provider name; default: all enabled.")
        parser.add_argument("--from", dest="start", required=True, type=_date, help="First UTC day (YYYY-MM-DD).")
        parser.add_argument("--to", dest="end", required=True, type=_date, help="Last UTC day, inclusive.")

    def handle(self, *args, provider, start, end, **options):
        if end < start:
            raise CommandError("--to is before --from.")
        providers = Provider.objects.filter(kind=ProviderKind.AWS).order_by("name")
        if provider:
            providers = providers.filter(name__in=provider)
            missing = set(provider) - set(providers.values_list("name", flat=True))
            if missing:
                raise CommandError(f"No AWS provider named: {', '.join(sorted(missing))}")
        else:
            providers = providers.filter(enabled=True)
        failed = 0
        for row in providers:
            try:
                report = cost_explorer_import(provider=row, start=start, end=end + timedelta(days=1))
            except (CostExplorerError, ClientError, BotoCoreError) as exc:
                failed += 1
                self.stderr.write(f"{row.name}: {exc}")
                continue
            self.stdout.write(
                f"{row.name}: {report.days} days, ${money_text(report.billed_usd)} billed, "
                f"{report.egress_records} data-transfer records ({report.pages} pages)"
            )
        if failed:
            raise CommandError(f"{failed} provider(s) failed.")
