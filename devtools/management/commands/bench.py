"""``manage.py bench NAME``: run one benchmark in a throwaway database and print its JSON line."""

import importlib

from django.core.management.base import BaseCommand

BENCHMARKS = {
    # fleet
    "ingest": "devtools.bench.ingest",
    "scrape": "devtools.bench.scrape",
    "remote-write": "devtools.bench.remote_write",
    "storage": "devtools.bench.storage",
    "dashboard": "devtools.bench.dashboard",
    # scheduler
    "placement": "devtools.bench.placement",
    "optimality": "devtools.bench.optimality",
    "gravity": "devtools.bench.gravity",
    # billing
    "ledger": "devtools.bench.ledger",
    "report": "devtools.bench.report",
    "spend": "devtools.bench.spend",
    "buyrent": "devtools.bench.buyrent",
}


class Command(BaseCommand):
    help = "Run a benchmark (it builds its own data in <database>_bench) and print one JSON line of figures."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(BENCHMARKS))
        parser.add_argument("--scale", type=float, default=1.0, help="Multiply the data size (e.g. 0.1 to try it).")

    def handle(self, *args, name, scale, **options):
        from devtools.bench.common import emit

        module = importlib.import_module(BENCHMARKS[name])
        self.stdout.write(emit(module.run_scaled(scale)))
