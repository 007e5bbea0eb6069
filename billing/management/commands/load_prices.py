"""``manage.py load_prices``: load the shipped price catalogue and egress rates (idempotent)."""

from django.core.management.base import BaseCommand, CommandError

from billing.catalogue import CatalogueError, catalogue_load


class Command(BaseCommand):
    help = "Load billing/data/instance_prices.csv and egress_rates.csv into the database (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--path", help="A folder with instance_prices.csv and egress_rates.csv instead.")

    def handle(self, *args, path=None, **options):
        try:
            report = catalogue_load(path=path)
        except CatalogueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"instance prices: {report.prices_created} created, {report.prices_updated} updated, "
            f"{report.prices_unchanged} unchanged\n"
            f"egress rates: {report.egress_created} created, {report.egress_updated} updated, "
            f"{report.egress_unchanged} unchanged"
        )
