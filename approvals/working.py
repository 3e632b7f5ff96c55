"""`approvals worker --pool NAME`: a Prefect process worker whose SIGTERM hands the flow runs it
is running back to Prefect instead of killing them.

A stock `prefect worker start --type process` (Prefect 3.9.1) answers SIGTERM by exiting within a
second or two and killing the processes of the runs it holds without recording a state: those
runs stay Running for good, and a decision made later never completes them. This command runs
that very worker as a child process and, on SIGTERM or SIGINT:

    1. freezes it (SIGSTOP): it takes no new run and kills nothing;
    2. sends each of its runs' processes a plain SIGTERM: the run crashes "aborted by a
       termination signal", which keeps its approval requests open; it looks again until no
       new run process shows up and no child the worker forked is still to exec its run;
    3. waits for those processes to exit (STOP_GRACE_SECONDS, then SIGKILL);
    4. stops the worker (SIGTERM, SIGCONT) and sets each run it stopped to AwaitingRetry
       (handing_back.reschedule), for any worker of the pool to run again; the re-run's gates
       find their requests by idempotency key and wait on; the pool's runs still Pending are
       logged (a run the worker had claimed but not started yet: another worker may own it).

It is a child subreaper (PR_SET_CHILD_SUBREAPER): when the Prefect worker dies on its own (a
crash, an OOM kill), the processes of its runs become this process's children instead of
init's, and are stopped and handed back the same way before it exits.

The runs' processes are found through /proc (a descendant whose environment names
PREFECT__FLOW_RUN_ID), so this needs Linux.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
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

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from slack_approvals.core.errors import ApprovalsError

from .handing_back import HAND_BACK_TIMEOUT_SECONDS, STOP_GRACE_SECONDS, reschedule

log = logging.getLogger(__name__)

PROC = Path("/proc")
RUN_ID_VARIABLE = b"PREFECT__FLOW_RUN_ID="
WORKER_EXIT_SECONDS = 30.0  # the frozen worker, once resumed, has nothing left to wait for
RESCAN_SECONDS = 0.1  # between looks for run processes that showed up after the last one
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
REAP_EVERY = 25  # polls of the worker (0.2 s each) between reaps of orphans that exited


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


def _cmdline(pid: int) -> bytes | None:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None


def unexeced_children(parent: int) -> list[int]:
    """Children of `parent` still running its program (forked, their run not exec'd yet):
    the next look finds them as run processes."""
    command = _cmdline(parent)
    return [pid for pid, ppid in _parents().items()
            if ppid == parent and command is not None and _cmdline(pid) == command and _alive(pid)]


def become_subreaper() -> bool:
    """Orphaned descendants become this process's children (Linux 3.4+); False elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(keep: int) -> None:
    """Collect the exit status of adopted orphans that ended (zombies), never the worker's
    (`keep`): its Popen reads that one."""
    own = os.getpid()
    for pid, parent in _parents().items():
        if parent == own and pid != keep and not _alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def stop_runs(root: int) -> dict[int, UUID]:
    """SIGTERM every run process under `root`, looking again until no new one shows up and
    no child of `root` is still to exec its run; wait for them (STOP_GRACE_SECONDS, then
    SIGKILL). Returns pid -> flow run id of every run process stopped."""
    runs: dict[int, UUID] = {}
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while True:
        # Children still to exec first, then the scan: one that execs in between is found by
        # the scan, never missed by both.
        pending_exec = unexeced_children(root)
        fresh = {pid: run_id for pid, run_id in run_processes(root).items() if pid not in runs}
        for pid, run_id in fresh.items():
            log.info("stopping flow run %s (process %d) to hand it back", run_id, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        runs |= fresh
        if (not fresh and not pending_exec) or time.monotonic() >= deadline:
            if pending_exec:
                log.warning("processes %s forked by the worker did not start their run within "
                            "%.0f s: left alone", pending_exec, STOP_GRACE_SECONDS)
            break
        time.sleep(RESCAN_SECONDS)
    deadline = time.monotonic() + STOP_GRACE_SECONDS  # the last one found gets its grace too
    while any(_alive(pid) for pid in runs) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in runs:
        if _alive(pid):
            log.warning("process %d did not stop within %.0f s: killed", pid, STOP_GRACE_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return runs


def log_pending_runs(pool: str, handed_back: set[UUID]) -> list[UUID]:
    """The pool's runs left Pending: a worker claimed them and had not started them. This one
    may have been that worker (the run stays Pending until Prefect's late-run handling) or
    another, still running it: said, not changed."""
    try:
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}), \
                get_client(sync_client=True,
                           httpx_settings={"timeout": HAND_BACK_TIMEOUT_SECONDS}) as client:
            pending = client.read_flow_runs(
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.PENDING]))))
    except Exception as e:
        log.warning("could not list the Pending runs of work pool %s: %s", pool, e)
        return []
    left = [run.id for run in pending if run.id not in handed_back]
    for run_id in left:
        log.warning("flow run %s of work pool %s is Pending with no process here: if no other "
                    "worker runs it, set it to Scheduled again (or cancel it) in Prefect",
                    run_id, pool)
    return left


def worker_command(pool: str, limit: int | None) -> list[str]:
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool,
               "--type", "process"]
    return command + (["--limit", str(limit)] if limit is not None else [])


def hand_back(worker: subprocess.Popen[bytes], pool: str | None = None) -> list[UUID]:
    """Steps 1-4 above; returns the runs set to AwaitingRetry."""
    os.kill(worker.pid, signal.SIGSTOP)
    runs = stop_runs(worker.pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker.pid, signal.SIGTERM)
        os.kill(worker.pid, signal.SIGCONT)
    try:
        worker.wait(timeout=WORKER_EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    # Only now: the worker, stopping, reports the runs whose process it saw die as crashed, and
    # the hand-back must come after that. Orphans it left (the subreaper's) are stopped too.
    runs |= stop_runs(os.getpid())
    handed_back = asyncio.run(reschedule(set(runs.values()))) if runs else []
    if pool is not None:
        log_pending_runs(pool, set(runs.values()))
    return handed_back


def hand_back_orphans(worker: subprocess.Popen[bytes], pool: str) -> list[UUID]:
    """The worker exited on its own: the processes of its runs, now this process's children,
    are stopped and their runs handed back before this process exits (systemd would kill
    them unrecorded)."""
    runs = stop_runs(os.getpid())
    if runs:
        log.warning("the Prefect worker exited (code %s) leaving %d flow run(s) in process: "
                    "handing them back", worker.returncode, len(runs))
    handed_back = asyncio.run(reschedule(set(runs.values()))) if runs else []
    log_pending_runs(pool, set(runs.values()))
    return handed_back


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
    if not become_subreaper():
        log.warning("could not become a child subreaper: if the Prefect worker dies, the runs "
                    "it leaves are not handed back")
    try:
        # Its own session: a Ctrl+C in a terminal reaches this process only, not the worker.
        worker = subprocess.Popen(worker_command(pool, limit), start_new_session=True)
        polls = 0
        while worker.poll() is None and not stop.wait(0.2):
            polls += 1
            if polls % REAP_EVERY == 0:
                reap_orphans(worker.pid)
        if worker.poll() is not None:
            return worker.returncode, hand_back_orphans(worker, pool)
        return 0, hand_back(worker, pool)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
