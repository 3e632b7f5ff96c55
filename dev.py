#!/usr/bin/env python3
"""Sets up the project's virtualenv and runs the demo or the tests: `python3 dev.py demo|test`.

Needs nothing but Python 3.11+; everything else (Redis included) comes from PyPI.
"""

from __future__ import annotations

import os
import signal
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


def run_until_done(command: list[Path | str]) -> int:
    """Run the child to its end, whatever signal arrives: it owns its shutdown.

    Ctrl+C in a terminal reaches the whole foreground process group, the child included, so
    this process ignores SIGINT and waits while the child prints its summary and stops the
    servers it started (subprocess.call would kill it 0.25 s later). A SIGTERM or SIGHUP sent
    to this process alone is passed on to the child.
    """
    child = subprocess.Popen(command, cwd=ROOT)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    for name in ("SIGTERM", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            previous[getattr(signal, name)] = signal.signal(getattr(signal, name), forward)
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "setup"):
        print("usage: python3 dev.py demo [options] | test [pytest args] | setup", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv("test,bench")
    if command == "setup":
        return 0
    if command == "demo":
        return run_until_done([BIN / "approvals", "demo", *rest])
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
