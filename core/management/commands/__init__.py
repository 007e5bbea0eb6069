"""Management commands of the core app (e.g. create_token)."""
