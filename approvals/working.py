"""`approvals worker --pool NAME`: a Prefect process worker whose SIGTERM hands the flow runs it
is running back to Prefect instead of killing them.

A stock `prefect worker start --type process` (Prefect 3.9.1) answers SIGTERM by exiting within a
second or two and killing the processes of the runs it holds without recording a state: those
runs stay Running for good, and a decision made later never completes them. This command runs
that very worker as a child process and, on SIGTERM or SIGINT:

    1. freezes it (SIGSTOP): it takes no new run and kills nothing;
    2. sends each of its runs' processes a plain SIGTERM: the run crashes "aborted by a
       termination signal", which keeps its approval requests open;
    3. waits for those processes to exit (STOP_GRACE_SECONDS, then SIGKILL);
    4. stops the worker (SIGTERM, SIGCONT) and sets each run it stopped to AwaitingRetry
       (handing_back.reschedule), for any worker of the pool to run again; the re-run's gates
       find their requests by idempotency key and wait on.

The runs' processes are found through /proc (a descendant of the worker whose environment names
PREFECT__FLOW_RUN_ID), so this needs Linux.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from uuid import UUID

from slack_approvals.core.errors import ApprovalsError

from .handing_back import STOP_GRACE_SECONDS, reschedule

log = logging.getLogger(__name__)

PROC = Path("/proc")
RUN_ID_VARIABLE = b"PREFECT__FLOW_RUN_ID="
WORKER_EXIT_SECONDS = 30.0  # the frozen worker, once resumed, has nothing left to wait for


class WorkerError(ApprovalsError):
    """The worker cannot run here (no /proc) or could not be started."""


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process we can see."""
    parents = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # The command name in parentheses may hold spaces: the fields start after its ')'.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
    return parents


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for the frozen worker to reap it."""
    try:
        state = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def run_processes(worker_pid: int) -> dict[int, UUID]:
    """The topmost process of each flow run the worker started: pid -> flow run id."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found: dict[int, UUID] = {}
    stack = list(children.get(worker_pid, []))
    while stack:
        pid = stack.pop()
        run_id = None
        with contextlib.suppress(OSError, ValueError):
            for variable in (PROC / str(pid) / "environ").read_bytes().split(b"\0"):
                if variable.startswith(RUN_ID_VARIABLE):
                    run_id = UUID(variable[len(RUN_ID_VARIABLE):].decode())
        if run_id is not None and _alive(pid):
            found[pid] = run_id  # its own children go with it
        else:
            stack.extend(children.get(pid, []))
    return found


def worker_command(pool: str, limit: int | None) -> list[str]:
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool,
               "--type", "process"]
    return command + (["--limit", str(limit)] if limit is not None else [])


def hand_back(worker: subprocess.Popen[bytes]) -> list[UUID]:
    """Steps 1-4 above; returns the runs set to AwaitingRetry."""
    os.kill(worker.pid, signal.SIGSTOP)
    runs = run_processes(worker.pid)
    for pid, run_id in runs.items():
        log.info("stopping flow run %s (process %d) to hand it back", run_id, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(_alive(pid) for pid in runs) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in runs:
        if _alive(pid):
            log.warning("process %d did not stop within %.0f s: killed", pid, STOP_GRACE_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker.pid, signal.SIGTERM)
        os.kill(worker.pid, signal.SIGCONT)
    try:
        worker.wait(timeout=WORKER_EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    # Only now: the worker, stopping, reports the runs whose process it saw die as crashed, and
    # the hand-back must come after that.
    return asyncio.run(reschedule(set(runs.values()))) if runs else []


def run_worker(pool: str, limit: int | None = None) -> tuple[int, list[UUID]]:
    """Run the worker until it exits or a SIGTERM/SIGINT hands its runs back; returns the
    worker's exit code (0 after a hand-back) and the runs handed back."""
    if not (PROC / str(os.getpid()) / "environ").exists():
        raise WorkerError("approvals worker finds its runs' processes through /proc: it needs "
                          "Linux (elsewhere use `prefect worker start`, and drain before a stop)")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        # Its own session: a Ctrl+C in a terminal reaches this process only, not the worker.
        worker = subprocess.Popen(worker_command(pool, limit), start_new_session=True)
        while worker.poll() is None and not stop.wait(0.2):
            pass
        if worker.poll() is not None:
            return worker.returncode, []
        return 0, hand_back(worker)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
