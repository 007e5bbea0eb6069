"""FinOps FOCUS 1.0: the ledger exported as a FOCUS dataset (export.py) and cloud bills imported from FOCUS
exports (importer.py); columns.py holds the column list, types and allowed values both use."""
