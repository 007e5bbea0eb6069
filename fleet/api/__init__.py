"""REST API of the fleet app: serializers, viewsets and their routes under /api/v1/."""
