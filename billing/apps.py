"""Spend: prices, on-prem cost models, egress, the cost ledger, budgets and reports."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _after_migrate(sender: AppConfig, **kwargs) -> None:
    from billing.schedules import billing_schedules_sync

    billing_schedules_sync()


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        post_migrate.connect(_after_migrate, sender=self, dispatch_uid="billing-after-migrate")
