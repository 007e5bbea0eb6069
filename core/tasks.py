"""Celery tasks of the core app."""

from celery import shared_task

from core.choices import HeartbeatComponent
from core.services import heartbeat_record


@shared_task(bind=True, name="core.tasks.heartbeat", ignore_result=True)
def heartbeat(self, queue: str) -> None:
    """Record that a worker consuming ``queue`` is alive (beat sends one per queue)."""
    heartbeat_record(component=HeartbeatComponent.WORKER, name=queue, hostname=self.request.hostname or "")
