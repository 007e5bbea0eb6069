"""Pages of the billing app: spend and reports."""
