"""`approvals demo --auto` runs the whole product headless and its summary matches the policy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from slack_approvals.state.private_server import STATE_FILE

# A demo starts Redis, a Prefect server, the sandbox and the bot: allow for a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_auto_demo_runs_to_completion(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "REDIS_URL", "APPROVALS_", "PREFECT_API"))}
    env.update({"APPROVALS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
                "PREFECT_HOME": str(tmp_path / "prefect")})
    result = subprocess.run(
        [sys.executable, "-m", "slack_approvals", "demo", "--auto",
         "--port", "0", "--timeout", "8s"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "approved: Finance; rejected: Engineering; timed out: Sales" in out
    assert "checkout 2.4.0 to production: approved and deployed" in out
    assert "Every decision matches the scripted policy." in out
    assert "Cloud spend is 18% over the quarter's budget" in out  # the audit trail is printed
    # The demo stops the private Redis it started.
    assert not (tmp_path / "data" / "redis" / STATE_FILE).exists()


def test_interrupted_demo_stops_what_it_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "REDIS_URL", "APPROVALS_", "PREFECT_API"))}
    env.update({"APPROVALS_DATA_DIR": str(tmp_path / "data"), "PREFECT_HOME": str(tmp_path / "p")})
    log = tmp_path / "demo.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "demo", "--port", "0"],
        cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "Sandbox Slack:" not in log.read_text():
            assert process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.2)
        state = json.loads((tmp_path / "data" / "redis" / STATE_FILE).read_text())
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert not (tmp_path / "data" / "redis" / STATE_FILE).exists()
    assert not psutil.pid_exists(int(state["pid"])) or psutil.Process(
        int(state["pid"])).status() == psutil.STATUS_ZOMBIE
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]  # the Prefect server went with it
