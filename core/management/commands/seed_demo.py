"""``manage.py seed_demo``: a simulated fleet and, optionally, a demo login."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.choices import Role
from core.services import user_set_role
from fleet.demo import demo_fleet_delete, demo_fleet_seed


class Command(BaseCommand):
    help = (
        "Seed a plausible demo fleet (on-prem sites, AWS and GCP regions, real GPU types), its prices, 30 days of "
        "cost ledger, budgets (one about to alert), a weekly report subscription and a few jobs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--nodes", type=int, default=300, help="About how many nodes (default 300).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed; the same seed gives the same fleet.")
        parser.add_argument("--reset", action="store_true", help="Delete an existing demo fleet first.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if the demo fleet exists.")
        parser.add_argument("--user", default="", help="Also create (or reset) this admin login.")
        parser.add_argument("--password", default="", help="Password for --user.")

    def handle(self, *args, nodes, seed, reset, if_empty, user, password, **options):
        if nodes < 1:
            raise CommandError("--nodes must be at least 1.")
        if user and not password:
            raise CommandError("--user needs --password.")
        if reset:
            demo_fleet_delete()
        try:
            counts = demo_fleet_seed(nodes=nodes, seed=seed)
            self.stdout.write("Seeded " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        except ValueError as exc:
            if not if_empty:
                raise CommandError(str(exc)) from exc
            self.stdout.write("Demo fleet already present; left as it is.")
        self._seed_billing_and_scheduler()
        if user:
            account, _ = get_user_model().objects.get_or_create(username=user)
            account.set_password(password)
            account.save()
            user_set_role(user=account, role=Role.ADMIN)
            self.stdout.write(f"Login: {user} (admin role)")

    def _seed_billing_and_scheduler(self) -> None:
        """Prices, the ledger of the last 30 days, budgets, a weekly report and some jobs (each step idempotent)."""
        from billing.budgets import demo_budget_tighten, demo_budgets_seed
        from billing.catalogue import demo_prices_seed
        from billing.ledger import demo_ledger_seed
        from billing.reports.delivery import demo_reports_seed
        from fleet.demo import demo_telemetry_history_seed
        from scheduler.demo import demo_scheduler_seed

        history = demo_telemetry_history_seed(days=30)
        self.stdout.write(f"Telemetry history: {history} GPU-hours of synthetic roll-ups")
        prices = demo_prices_seed()
        self.stdout.write("Prices: " + ", ".join(f"{v} {k}" for k, v in prices.items()))
        ledger = demo_ledger_seed(days=30)
        self.stdout.write(
            f"Ledger: {ledger.rows} node-hours over {len(ledger.days)} days, "
            f"{ledger.unpriced_count} nodes without a price"
        )
        budgets = demo_budgets_seed()
        tight = demo_budget_tighten()
        self.stdout.write(f"Budgets: {len(budgets)} created" + (f"; {tight} is at 85 % already" if tight else ""))
        demo_reports_seed()
        scheduler = demo_scheduler_seed()
        self.stdout.write("Scheduler: " + ", ".join(f"{v} {k}" for k, v in scheduler.items()))
