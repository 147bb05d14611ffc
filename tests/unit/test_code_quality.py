"""The house rules as tests: layer contracts (import-linter), ruff, mypy (strict on router/ and mappings/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("tool, args", [
    ("lint-imports", []),
    ("ruff", ["check", "."]),
    ("mypy", ["router", "mappings", "connectors", "api"]),
], ids=["import-linter", "ruff", "mypy"])
def test_code_passes(tool: str, args: list[str]) -> None:
    result = subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
