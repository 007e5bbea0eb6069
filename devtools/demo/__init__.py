"""The demo's seed data: a plausible fleet, its prices, ledger, budgets, reports and jobs (``manage.py seed_demo``)."""
