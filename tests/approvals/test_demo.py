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
import redis

from slack_approvals.approvals.demo import DEMO_DB, demo_database
from slack_approvals.state.private_server import STATE_FILE, ensure_private_server, stop_private_server

# A demo starts Redis, a Prefect server, the sandbox and the bot: allow for a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


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


def test_ctrl_c_on_dev_py_demo_prints_the_summary_and_stops_redis(tmp_path: Path) -> None:
    """Ctrl+C in a terminal signals the whole foreground group: dev.py must wait for the demo,
    which prints its report and stops its private Redis, with no traceback from either."""
    repo = Path(__file__).resolve().parents[2]
    data = tmp_path / "data"
    # A request left in the demo's database by an earlier demo; database 0 is not the demo's.
    folder = data / "redis"
    server = ensure_private_server(folder)
    for db, key in ((DEMO_DB, "leftover"), (0, "kept")):
        client = redis.Redis.from_url(demo_database(server.url).rsplit("/", 1)[0] + f"/{db}")
        client.set(key, "1")
        client.close()
    stop_private_server(folder)  # AOF on: both keys come back when the demo starts it
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "REDIS_URL", "APPROVALS_", "PREFECT_API"))}
    env.update({"APPROVALS_DATA_DIR": str(data), "PREFECT_HOME": str(tmp_path / "p"),
                "COLUMNS": "200"})
    log = tmp_path / "demo.log"
    process = subprocess.Popen(
        [sys.executable, str(repo / "dev.py"), "demo", "--port", "0"],
        cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True)  # its own group, as a terminal gives a foreground job
    try:
        deadline = time.monotonic() + 180
        # Wait for the scenario's requests, so the report has something to show.
        while log.read_text().count("pending") < 4:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo did not post its requests"
            time.sleep(0.5)
        state = json.loads((folder / STATE_FILE).read_text())
        os.killpg(process.pid, signal.SIGINT)
        # Stopping waits for the demo's in-process runs and flushes Prefect's events: seconds
        # alone, much longer when the other test worker keeps both cores busy.
        try:
            code = process.wait(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not stop after Ctrl+C:\n{log.read_text()[-3000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert code == 130, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert "Audit: Finance: sign off the 2025-Q4 figures" in output  # the report was printed
    assert "Error logging to API" not in output and "EventsWorker" not in output, output[-3000:]
    assert "Riley Requester" in output  # people by name, not by id
    assert not (folder / STATE_FILE).exists()
    assert not psutil.pid_exists(int(state["pid"])) or psutil.Process(
        int(state["pid"])).status() == psutil.STATUS_ZOMBIE
    # The demo started from an empty database of its own and left database 0 alone.
    server = ensure_private_server(folder)
    try:
        demo_db = redis.Redis.from_url(demo_database(server.url))
        default_db = redis.Redis.from_url(demo_database(server.url).rsplit("/", 1)[0] + "/0")
        assert demo_db.get("leftover") is None
        assert default_db.get("kept") == b"1"
        demo_db.close()
        default_db.close()
    finally:
        stop_private_server(folder)
