"""Billing app: prices, rates, the hourly cost ledger, Cost Explorer import, budgets and cost reports."""
