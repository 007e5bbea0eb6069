"""The shipped price data (instance_prices.csv, egress_rates.csv) and build_catalogue, the script that builds it."""
