"""The audit trail's read-only REST API: GET /api/v1/changes/."""
