"""Choice sets for the core app."""

from django.db import models


class Role(models.TextChoices):
    """The three roles; each is a Django group whose permissions are kept in sync by ``roles_sync``."""

    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


class HeartbeatComponent(models.TextChoices):
    """Which background process a heartbeat row speaks for."""

    BEAT = "beat", "Celery beat"
    WORKER = "worker", "Celery worker"
