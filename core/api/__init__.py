"""The REST API base every app builds on: authentication, permissions, pagination, routing, schema."""
