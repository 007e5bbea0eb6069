"""The billing app's layout and conventions (docs/billing.md, "Conventions"): filter sets in billing/filtersets.py,
API modules under 500 lines, no module using another's private names, services that never enqueue tasks, and
tasks and beat entries declared the one way."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from django_filters import FilterSet

import billing.api.urls  # noqa: F401 - imports every API module, so every filter set class exists
from config.celery import app as celery_app
from tests.conftest import ROOT

BILLING = ROOT / "billing"
# Modules that may enqueue tasks: the tasks themselves, the pages and the API.
ENQUEUERS = ("billing/tasks/", "billing/views/", "billing/api/")


def _modules() -> list[Path]:
    return sorted(p for p in BILLING.rglob("*.py") if "migrations" not in p.parts)


def _subclasses(cls) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_billing_filter_set_lives_in_billing_filtersets():
    billing_sets = [c for c in _subclasses(FilterSet) if c.__module__.startswith("billing.")]
    assert billing_sets, "no billing filter set found"
    assert {c.__module__ for c in billing_sets} == {"billing.filtersets"}


@pytest.mark.parametrize("path", sorted((BILLING / "api").glob("*.py")), ids=lambda p: p.name)
def test_api_modules_are_under_500_lines(path: Path):
    assert len(path.read_text().splitlines()) < 500


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_another_modules_private_names(path: Path):
    tree = ast.parse(path.read_text())
    modules = set()  # names bound to first-party modules: "from billing import selectors", "import billing.x"
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("billing", "fleet", "core"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    offenders.append(f"from {node.module} import {alias.name}")
                modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr != "_meta"  # Django's public model API
        ):
            offenders.append(f"{node.value.id}.{node.attr}")
    assert not offenders


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_tasks_views_and_the_api_enqueue(path: Path):
    relative = str(path.relative_to(ROOT))
    if relative.startswith(ENQUEUERS):
        return
    source = path.read_text()
    imports = [
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("billing.tasks")
    ]
    assert not imports, f"{relative} imports {imports}: services return what to enqueue, callers enqueue it"
    assert ".delay(" not in source and ".apply_async(" not in source


def test_billing_tasks_are_named_after_their_function():
    celery_app.loader.import_default_modules()
    tasks = {name: task for name, task in celery_app.tasks.items() if name.startswith("billing.")}
    assert tasks
    for name, task in tasks.items():
        function = task.run
        assert name == f"billing.tasks.{function.__name__}", name
        assert function.__module__.startswith("billing.tasks."), name


def test_beat_entries_name_registered_tasks_and_module_intervals(db):
    from django_celery_beat.models import PeriodicTask

    from billing import schedules

    schedules.billing_schedules_sync()
    entries = PeriodicTask.objects.filter(task__startswith="billing.")
    assert entries.count() == 5
    celery_app.loader.import_default_modules()
    intervals = {value for name, value in vars(schedules).items() if name.endswith("_INTERVAL_S")}
    for entry in entries:
        assert entry.task in celery_app.tasks, entry.task
        assert entry.interval.every in intervals, entry.name
    assert "import billing.tasks" not in inspect.getsource(schedules)
    assert "from billing.tasks" not in inspect.getsource(schedules)
