"""REST API of the billing app: one module per resource (prices, ledger, spend, budgets, reports), joined in urls.py."""
