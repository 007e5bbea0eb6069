"""Billing models: prices and cost models, the ledger and egress, carbon, commitments, budgets and reports."""

from billing.models.budgets import Budget, BudgetAlert, ReportDelivery, ReportSubscription
from billing.models.carbon import GridIntensity, GridIntensityHour, ProviderPue
from billing.models.commitments import Commitment, CommitmentHour
from billing.models.ledger import BilledCost, EgressRecord, LedgerDay, LedgerEntry, LedgerNodeDay, LedgerShare
from billing.models.prices import Discount, EgressRate, InstancePrice, OnPremCostModel

__all__ = [
    "BilledCost",
    "Budget",
    "Commitment",
    "CommitmentHour",
    "BudgetAlert",
    "Discount",
    "EgressRate",
    "EgressRecord",
    "GridIntensity",
    "GridIntensityHour",
    "InstancePrice",
    "LedgerDay",
    "LedgerEntry",
    "LedgerNodeDay",
    "LedgerShare",
    "OnPremCostModel",
    "ProviderPue",
    "ReportDelivery",
    "ReportSubscription",
]
