"""Who made a change and through which interface: the pghistory context of requests and Celery tasks.

The context is a small JSON object every event row of a request or task carries (``pgh_context``):
``user`` (id), ``username``, ``interface`` ("page", "api", "admin", "task"), and ``method`` and ``path`` for
requests or ``task`` and ``task_id`` for tasks. A change made outside both (a management command, the shell,
SQL typed into psql) has no context: the Changes page shows it as interface "command".
"""

from __future__ import annotations

from typing import Any

import pghistory
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIRequest
from pghistory import runtime
from pghistory.middleware import HistoryMiddleware

INTERFACE_PAGE = "page"
INTERFACE_API = "api"
INTERFACE_ADMIN = "admin"
INTERFACE_TASK = "task"
INTERFACE_COMMAND = "command"
INTERFACES = (INTERFACE_PAGE, INTERFACE_API, INTERFACE_ADMIN, INTERFACE_TASK, INTERFACE_COMMAND)


def context_active() -> bool:
    """Whether changes made now are already recorded under a context (a request's, or a task's)."""
    return hasattr(runtime._tracker, "value")


def user_context(user) -> dict[str, Any]:
    """The context keys naming ``user`` (an anonymous user or None names nobody)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return {"user": None, "username": ""}
    return {"user": user.pk, "username": user.get_username()}


def interface_for(path: str) -> str:
    """The interface a request path belongs to: the REST API, the admin, or a page."""
    if path.startswith(settings.FLEETDECK_API_PATH_PREFIXES) or path.startswith("/api/"):
        return INTERFACE_API
    if path.startswith("/admin/"):
        return INTERFACE_ADMIN
    return INTERFACE_PAGE


class _AuditRequest:
    """A request that updates the context when its user is set later: by DRF's token authentication inside
    the view, or by ``login()``; a change made after that is the authenticated user's."""

    def __setattr__(self, attr, value):
        if attr == "user":
            pghistory.context(**user_context(value))
        return super().__setattr__(attr, value)


class _AuditWSGIRequest(_AuditRequest, WSGIRequest):
    """A WSGI request that keeps the audit context's user up to date."""


class _AuditASGIRequest(_AuditRequest, ASGIRequest):
    """An ASGI request that keeps the audit context's user up to date."""


class AuditContextMiddleware(HistoryMiddleware):
    """pghistory's middleware, recording the user's name and the interface beside the user id."""

    def get_context(self, request) -> dict[str, Any]:
        """The context of a request: who (as the session knows them so far), which interface, which URL."""
        return {
            **user_context(getattr(request, "user", None)),
            "interface": interface_for(request.path),
            "method": request.method,
            "path": request.path,
        }

    def __call__(self, request):
        with pghistory.context(**self.get_context(request)):
            if isinstance(request, WSGIRequest):
                request.__class__ = _AuditWSGIRequest
            elif isinstance(request, ASGIRequest):  # pragma: no cover - the app is served over WSGI
                request.__class__ = _AuditASGIRequest
            return self.get_response(request)


_task_contexts: dict[str, pghistory.context] = {}


def _task_prerun(sender=None, task_id=None, task=None, **kwargs) -> None:
    # A task run eagerly inside a request (or another task) stays that caller's change.
    if context_active() or task_id is None:
        return
    context = pghistory.context(
        user=None, username="", interface=INTERFACE_TASK, task=getattr(task, "name", str(sender)), task_id=task_id
    )
    context.__enter__()
    _task_contexts[task_id] = context


def _task_postrun(sender=None, task_id=None, **kwargs) -> None:
    context = _task_contexts.pop(task_id, None)
    if context is not None:
        context.__exit__(None, None, None)


def task_context_connect() -> None:
    """Record changes a Celery task makes under the task's name (celery sends prerun/postrun around each run)."""
    task_prerun.connect(_task_prerun, dispatch_uid="audit-task-prerun", weak=False)
    task_postrun.connect(_task_postrun, dispatch_uid="audit-task-postrun", weak=False)
