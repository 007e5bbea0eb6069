"""Scheduled cost reports by email: periods, data (via billing.selectors), rendering and exactly-once delivery."""
