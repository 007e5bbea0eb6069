"""Management commands of the billing app."""
