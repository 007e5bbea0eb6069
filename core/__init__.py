"""Core app: what every app shares (roles, API tokens, the API base, heartbeats, template tags)."""
