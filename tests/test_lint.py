"""ruff and mypy pass on the whole repository, as configured in pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def run_tool(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(result.args[2:])
    return (f"`{command}` exited with {result.returncode} in {ROOT}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")


def test_ruff_check() -> None:
    result = run_tool("ruff", "check", ".", "--no-cache", "--output-format", "full", timeout=120)
    assert result.returncode == 0, describe(result)


def test_mypy() -> None:
    # The packages to check and the strictness come from [tool.mypy] in pyproject.toml.
    result = run_tool("mypy", timeout=280)
    assert result.returncode == 0, describe(result)
    assert "Success" in result.stdout, describe(result)
