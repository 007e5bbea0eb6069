"""Billing models: prices and cost models, the ledger and egress, budgets and reports."""

from billing.models.budgets import Budget, BudgetAlert, ReportDelivery, ReportSubscription
from billing.models.ledger import BilledCost, EgressRecord, LedgerDay, LedgerEntry, LedgerNodeDay
from billing.models.prices import Discount, EgressRate, InstancePrice, OnPremCostModel

__all__ = [
    "BilledCost",
    "Budget",
    "BudgetAlert",
    "Discount",
    "EgressRate",
    "EgressRecord",
    "InstancePrice",
    "LedgerDay",
    "LedgerEntry",
    "LedgerNodeDay",
    "OnPremCostModel",
    "ReportDelivery",
    "ReportSubscription",
]
