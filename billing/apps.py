"""Spend: prices, on-prem cost models, egress, the cost ledger, budgets and reports (built in a later issue)."""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"
