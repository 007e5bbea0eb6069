"""Management commands of the billing app (load_prices, refresh_prices, ledger_backfill, import_costs)."""
