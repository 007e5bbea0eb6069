"""``manage.py bench NAME``: run one benchmark in a throwaway database and print its JSON line."""

import importlib

from django.core.management.base import BaseCommand

BENCHMARKS = {
    "ingest": "fleet.bench.ingest",
    "scrape": "fleet.bench.scrape",
    "storage": "fleet.bench.storage",
    "dashboard": "fleet.bench.dashboard",
    "placement": "scheduler.bench.placement",
    "optimality": "scheduler.bench.optimality",
    "gravity": "scheduler.bench.gravity",
    "ledger": "billing.bench.ledger",
    "report": "billing.bench.report",
    "spend": "billing.bench.spend",
    # billing: "ledger", "spend", "report"; scheduler: "placement", "optimality", "gravity"
}


class Command(BaseCommand):
    help = "Run a benchmark (it builds its own data in <database>_bench) and print one JSON line of figures."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(BENCHMARKS))
        parser.add_argument("--scale", type=float, default=1.0, help="Multiply the data size (e.g. 0.1 to try it).")

    def handle(self, *args, name, scale, **options):
        from fleet.bench.common import emit

        module = importlib.import_module(BENCHMARKS[name])
        self.stdout.write(emit(module.run_scaled(scale)))
