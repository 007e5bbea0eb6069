"""``manage.py seed_demo``: a simulated fleet and, optionally, a demo login."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.choices import Role
from core.services import user_set_role
from devtools.demo.fleet import demo_fleet_delete, demo_fleet_seed
from devtools.demo.seed import demo_history_billing_and_scheduler_seed


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
        demo_history_billing_and_scheduler_seed(log=self.stdout.write)
        if user:
            account, _ = get_user_model().objects.get_or_create(username=user)
            account.set_password(password)
            account.save()
            user_set_role(user=account, role=Role.ADMIN)
            self.stdout.write(f"Login: {user} (admin role)")
