#!/usr/bin/env python3
"""Sets up the project's virtualenv and runs the demo or the tests: `python3 dev.py demo|test`.

Needs nothing but Python 3.11+; everything else (Redis included) comes from PyPI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".installed"


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"error: Python 3.11+ is needed, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    wanted = f"{extras}:{(ROOT / 'pyproject.toml').stat().st_mtime_ns}"
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print(f"installing slack-approvals[{extras}] into {VENV}", flush=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip", "uv"], check=True)
    subprocess.run([BIN / "uv", "pip", "install", "--python", PYTHON, "-q", "-e", f".[{extras}]"],
                   check=True, cwd=ROOT)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "setup"):
        print("usage: python3 dev.py demo [options] | test [pytest args] | setup", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv("test,bench")
    if command == "setup":
        return 0
    if command == "demo":
        return subprocess.call([BIN / "approvals", "demo", *rest], cwd=ROOT)
    # Two workers, one test file each at a time: file-scoped fixtures (a browser, a bot) stay
    # on one worker, and the waits for subprocesses and Prefect overlap.
    parallel = [] if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in rest) \
        else ["-n", "2", "--dist", "loadfile"]
    code = subprocess.call([PYTHON, "-m", "pytest", *parallel, *rest], cwd=ROOT)
    if code == 5:
        print("error: pytest collected no tests", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
