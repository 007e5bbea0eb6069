"""``manage.py ledger_backfill --from YYYY-MM-DD --to YYYY-MM-DD [--node NAME …]``: recompute the cost ledger."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from billing.ledger import ledger_backfill
from fleet.models import Node


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).") from None


class Command(BaseCommand):
    help = "Recompute the hourly cost ledger for the UTC days FROM..TO (inclusive), replacing their rows."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True, type=_date, help="First UTC day (YYYY-MM-DD).")
        parser.add_argument("--to", dest="end", required=True, type=_date, help="Last UTC day, inclusive.")
        parser.add_argument("--node", action="append", default=[], help="Only this node (name or id); repeatable.")

    def handle(self, *args, start, end, node, **options):
        if end < start:
            raise CommandError("--to is before --from.")
        node_ids = None
        if node:
            node_ids, missing = [], []
            for value in node:
                match = Node.objects.filter(pk=int(value)) if value.isdigit() else Node.objects.filter(name=value)
                ids = list(match.values_list("pk", flat=True))
                node_ids += ids
                if not ids:
                    missing.append(value)
            if missing:
                raise CommandError(f"No node named or numbered: {', '.join(missing)}")
        report = ledger_backfill(start=start, end=end, node_ids=node_ids)
        self.stdout.write(
            f"ledger {start}..{end}: {report.rows} hourly rows, "
            f"{report.day_rows} daily rows over {len(report.days)} days"
        )
        if report.unpriced_count:
            self.stdout.write(
                self.style.WARNING(f"{report.unpriced_count} node(s) without a price or cost model (booked at $0):")
            )
            for pk, name in report.unpriced_nodes:
                self.stdout.write(f"  {name} (id {pk})")
