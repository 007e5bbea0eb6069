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


class RunStatus(models.TextChoices):
    """Where work asked for through a page or the API (a sync, a placement run) is: waiting for a worker, running,
    or finished."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"  # the report says what it did (a sync's per-scope cloud error is not a failed run)
    FAILED = "failed", "Failed"  # it could not run or finish: ``error`` says why
