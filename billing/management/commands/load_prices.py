"""``manage.py load_prices``: load the shipped price catalogue, egress rates and carbon data (idempotent)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.carbon import CarbonDataError, carbon_data_load
from billing.catalogue import CatalogueError, catalogue_load


class Command(BaseCommand):
    help = (
        "Load billing/data/instance_prices.csv, egress_rates.csv, grid_intensity.csv and provider_pue.csv into the "
        "database (idempotent; all or nothing)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--path", help="A folder with those four files instead.")

    def handle(self, *args, path=None, **options):
        try:
            with transaction.atomic():
                report = catalogue_load(path=path)
                carbon = carbon_data_load(path=path)
        except (CatalogueError, CarbonDataError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"instance prices: {report.prices_created} created, {report.prices_updated} updated, "
            f"{report.prices_unchanged} unchanged\n"
            f"egress rates: {report.egress_created} created, {report.egress_updated} updated, "
            f"{report.egress_unchanged} unchanged\n"
            f"grid intensities: {carbon.grid_created} created, {carbon.grid_updated} updated, "
            f"{carbon.grid_unchanged} unchanged\n"
            f"provider PUEs: {carbon.pue_created} created, {carbon.pue_updated} updated, "
            f"{carbon.pue_unchanged} unchanged"
        )
