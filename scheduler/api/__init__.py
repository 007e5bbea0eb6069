"""The scheduler's REST API: serializers, viewsets and the routes they register on /api/v1/."""
