"""Repository checks: every Python module outside migrations and tests says what it is, and none is too long."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500
# Not the project's modules: tests, migrations (generated), the virtual environment, build and tool output.
SKIPPED_DIRS = {"tests", "migrations", "node_modules", "staticfiles", "test-artifacts", "__pycache__"}


def project_modules() -> list[Path]:
    """Every ``.py`` file of the project, migrations and tests left out, relative to the repository root."""
    modules = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(part in SKIPPED_DIRS or part.startswith(".") or part.endswith(".egg-info") for part in parts[:-1]):
            continue
        modules.append(path.relative_to(ROOT))
    return modules


def docstring_problem(source: str) -> str | None:
    """Why ``source`` does not start with a docstring whose first line says what the module is; None if it does."""
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree, clean=False)
    if docstring is None:
        return "no module docstring"
    if not docstring.strip().splitlines() or not docstring.splitlines()[0].strip():
        return "the docstring's first line is empty"
    return None


def test_the_walk_finds_the_project_and_leaves_tests_and_migrations_out():
    modules = {str(path) for path in project_modules()}
    assert {"manage.py", "config/settings.py", "fleet/telemetry/poll.py"} <= modules
    assert not any(m.startswith("tests/") or "/migrations/" in m or m.startswith(".venv/") for m in modules)


def test_the_docstring_check_tells_good_from_bad():
    assert docstring_problem('"""Polling: fetch every node\'s /metrics."""\n') is None
    assert docstring_problem('"""\nStarts on the second line."""\n') == "the docstring's first line is empty"
    assert docstring_problem("import os\n") == "no module docstring"
    assert docstring_problem("") == "no module docstring"
    assert docstring_problem('import os\n"""Too late to be a docstring."""\n') == "no module docstring"


def test_every_module_starts_with_a_docstring_saying_what_it_is():
    problems = [
        f"{path}: {problem}"
        for path in project_modules()
        if (problem := docstring_problem((ROOT / path).read_text(encoding="utf-8")))
    ]
    assert not problems, "Modules without a first-line docstring:\n" + "\n".join(problems)


def test_no_module_is_over_the_line_limit():
    too_long = {
        str(path): lines
        for path in project_modules()
        if (lines := len((ROOT / path).read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"Modules over {MAX_LINES} lines (split them by role): {too_long}"
