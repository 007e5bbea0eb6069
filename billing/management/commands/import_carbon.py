"""``manage.py import_carbon FILE``: import hourly grid carbon intensities per site (site,hour,g_per_kwh)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.carbon import IntensityImportError, grid_intensity_import, sites_without_intensity
from billing.ledger import ledger_backfill
from fleet.models import Node


class Command(BaseCommand):
    help = (
        "Import hourly grid carbon intensities from a CSV file with the columns site (a site's name), hour (ISO 8601 "
        "with an offset or Z, on a UTC hour) and g_per_kwh (0..2000). Re-importing an hour replaces it. A file with "
        "any bad row imports nothing. See docs/billing.md#carbon."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the .csv file.")
        parser.add_argument(
            "--backfill",
            action="store_true",
            help="Then recompute the ledger of the imported sites' nodes for the days imported (co2e_kg).",
        )

    def handle(self, *args, file, backfill, **options):
        path = Path(file)
        try:
            with path.open("rb") as handle:
                report = grid_intensity_import(file=handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        except IntensityImportError as exc:
            raise CommandError(f"{path.name}: {len(exc.errors)} problem(s); nothing was imported.\n{exc}") from exc
        start, end = report.first_hour.date(), min(report.last_hour.date(), timezone.now().date())
        self.stdout.write(
            f"Imported {report.rows} hourly values from {path.name} ({report.created} new, {report.updated} replaced) "
            f"for {', '.join(report.site_names)}, "
            f"{report.first_hour:%Y-%m-%d %H:00}–{report.last_hour:%Y-%m-%d %H:00} UTC."
        )
        node_ids = list(Node.objects.filter(site_id__in=report.site_ids).values_list("pk", flat=True))
        if backfill and node_ids and start <= end:
            ledger = ledger_backfill(start=start, end=end, node_ids=node_ids)
            self.stdout.write(f"Ledger {start}..{end} recomputed for {len(node_ids)} node(s): {ledger.rows} rows.")
        elif node_ids and start <= end:
            self.stdout.write(
                f"The ledger's co2e_kg of those hours changes when they are recomputed: run again with --backfill, "
                f"or manage.py ledger_backfill --from {start} --to {end}."
            )
        for row in sites_without_intensity():
            self.stdout.write(self.style.WARNING(f"{row.site.name}: {row.warning}"))
