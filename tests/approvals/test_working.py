"""`approvals worker`'s search for its runs' processes, on real processes: a run whose process
the worker forked but has not exec'd yet is waited for, and the runs a dead worker leaves are
still found (the wrapper is their subreaper) and stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import psutil
import pytest

from slack_approvals.approvals.working import stop_runs, unexeced_children
from tests.integration.stack import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_forked_but_not_yet_exec_d_is_waited_for_and_stopped() -> None:
    run_id = uuid.uuid4()
    # A "worker" that forks a child which execs its run a moment later, as Prefect's process
    # worker does; the test freezes the worker in between, as `approvals worker` does.
    worker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, time
        if os.fork() == 0:
            time.sleep(1.5)
            os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)"],
                      {{**os.environ, "PREFECT__FLOW_RUN_ID": "{run_id}"}})
        time.sleep(120)
        """)])
    try:
        (child,) = wait_for("the fork", lambda: psutil.Process(worker.pid).children() or None,
                            timeout=30, every=0.02)
        os.kill(worker.pid, signal.SIGSTOP)
        assert unexeced_children(worker.pid) == [child.pid]  # same program, no run id yet

        stopped = stop_runs(worker.pid)

        assert stopped == {child.pid: run_id}
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        worker.kill()
        os.kill(worker.pid, signal.SIGCONT)
        worker.wait()


ORPHANS = """
import json, os, subprocess, sys, time
from slack_approvals.approvals.working import become_subreaper, run_processes, stop_runs

assert become_subreaper()
run_id = sys.argv[1]
# The "worker" starts its run's process and dies at once, as a crashed worker would.
worker = subprocess.Popen([sys.executable, "-c", f'''
import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                 env={{**os.environ, "PREFECT__FLOW_RUN_ID": "{run_id}"}})
'''])
worker.wait()
found = {}
for _ in range(300):
    found = run_processes(os.getpid())
    if found:
        break
    time.sleep(0.05)
stopped = stop_runs(os.getpid())
for pid in stopped:
    os.waitpid(pid, 0)  # adopted: this process collects it
print(json.dumps({"found": {str(k): str(v) for k, v in found.items()},
                  "stopped": {str(k): str(v) for k, v in stopped.items()}}))
"""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_the_runs_a_dead_worker_leaves_are_found_and_stopped(tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    result = subprocess.run([sys.executable, "-c", ORPHANS, run_id], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # Without the subreaper the orphan would be init's child, out of reach of the scan.
    assert list(report["found"].values()) == [run_id]
    assert report["stopped"] == report["found"]
    (pid,) = (int(p) for p in report["stopped"])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
