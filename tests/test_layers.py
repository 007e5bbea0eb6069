"""The import contracts of pyproject.toml ([tool.importlinter]) hold, so `make test` enforces the layers.

Each contract runs on its own through ``lint-imports --contract ID``: the layers (core < fleet < billing <
scheduler < dashboard < devtools), no domain app importing devtools, a Django-free node agent, and no import
cycle between the sibling modules of any app (function-level imports count).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = ("layers", "no-devtools", "agent-standalone", "acyclic")


@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_contract_is_kept(contract: str) -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", "--contract", contract],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout, result.stdout
