"""``manage.py refresh_prices --region us-east-1 [--instance-type p5.48xlarge ...]``: AWS Price List refresh."""

from django.core.management.base import BaseCommand, CommandError

from billing.pricelist import PriceListError, price_list_refresh


class Command(BaseCommand):
    help = "Fetch AWS on-demand prices from the Price List API (pricing.get_products) and store them."

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True, help="AWS region code, e.g. us-east-1.")
        parser.add_argument(
            "--instance-type",
            action="append",
            dest="instance_types",
            help="Repeat for several; default: every AWS GPU type Fleetdeck knows or has priced in the region.",
        )

    def handle(self, *args, region, instance_types=None, **options):
        try:
            report = price_list_refresh(region=region, instance_types=instance_types)
        except PriceListError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{region}: {report.created} created, {report.updated} updated, {report.unchanged} unchanged "
            f"({len(report.instance_types)} instance types asked)"
        )
        for line in report.skipped:
            self.stdout.write(f"skipped: {line}")
