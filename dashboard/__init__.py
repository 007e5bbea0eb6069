"""The dashboard: pages that compose several apps, starting with the overview (fleet, spend, process health)."""
