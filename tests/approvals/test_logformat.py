"""APPROVALS_LOG_FORMAT: JSON lines that parse and carry their fields, Prefect's loggers (here
and in the processes it starts) following, and a bad value refused in one line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import prefect.settings
import pytest

from slack_approvals.approvals.logformat import JsonFormatter


def record(message: str, *args: object, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad value")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("slack_approvals.bot.voting", logging.ERROR, __file__, 10, message,
                             args, exc_info)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_line_with_its_fields() -> None:
    line = JsonFormatter().format(record("vote on %s\nsecond line é \u2028", "r1", exc=True,
                                         request_id="r1", votes=2, when=datetime(2026, 1, 1)))
    assert "\n" not in line and "\u2028" not in line  # one record, one line, whatever it says
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR"
    assert parsed["logger"] == "slack_approvals.bot.voting"
    assert parsed["message"] == "vote on r1\nsecond line é \u2028"
    assert parsed["exception"].startswith("Traceback (most recent call last):")
    assert parsed["exception"].endswith("ValueError: bad value")
    assert parsed["request_id"] == "r1" and parsed["votes"] == 2
    assert parsed["when"] == "2026-01-01 00:00:00"  # what json cannot hold is written as text
    when = datetime.fromisoformat(parsed["time"].replace("Z", "+00:00"))
    assert parsed["time"].endswith("Z") and when.utcoffset() is not None
    assert abs((datetime.now(UTC) - when).total_seconds()) < 3600
    assert not {"args", "msg", "exc_info", "levelno", "pathname"} & set(parsed)


def test_extras_json_cannot_write_still_give_a_line() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    parsed = json.loads(JsonFormatter().format(record("x", loop=loop, pairs={(1, 2): "a"})))
    assert parsed["message"] == "x"
    assert parsed["pairs"] == "{(1, 2): 'a'}"


def test_the_formatter_takes_what_logging_config_passes() -> None:
    """Prefect's logging.yml names our class with its own `format: default`."""
    formatter = JsonFormatter("default", None, "%", True, defaults={"x": 1})
    assert json.loads(formatter.format(record("hi")))["message"] == "hi"


SCRIPT = textwrap.dedent("""
    import logging, subprocess, sys
    from slack_approvals.approvals.logformat import configure_logging
    configure_logging("json", logging.INFO)
    from prefect import flow, get_run_logger  # after: Prefect keeps the root handler set above

    @flow(name="log-format-probe")
    def probe() -> None:
        get_run_logger().info("from the flow run")

    logging.getLogger("slack_approvals.test").info("ours", extra={"request_id": "r1"})
    logging.getLogger("uvicorn.error").warning("uvicorn speaks")
    import warnings
    warnings.warn("a warning")
    probe()
    # A process Prefect would start (a served flow run) inherits the environment set above.
    child = ("import logging; from prefect import flow; "
             "logging.getLogger('prefect.engine').warning('from a child process')")
    sys.exit(subprocess.run([sys.executable, "-c", child]).returncode)
""")


def test_json_mode_covers_our_loggers_prefects_and_its_child_processes(
        prefect_database: str, tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
           "PREFECT_LOGGING_LEVEL": "INFO"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is JSON, or this raises
    by_message = {entry["message"]: entry for entry in parsed}
    assert by_message["ours"]["request_id"] == "r1"
    assert by_message["uvicorn speaks"]["logger"] == "uvicorn.error"
    run_line = by_message["from the flow run"]
    assert run_line["logger"] == "prefect.flow_runs"
    assert run_line["flow_name"] == "log-format-probe" and run_line["flow_run_id"]
    assert any(entry["message"].startswith("Finished in state Completed") for entry in parsed)
    assert by_message["from a child process"]["level"] == "WARNING"
    assert any(entry["logger"] == "py.warnings" and "a warning" in entry["message"]
               for entry in parsed)


def approvals(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "slack_approvals", *args], cwd=cwd,
                          env=environment, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [("pending",), ("policy", "check"), ("bot",)])
def test_a_bad_log_format_is_refused_in_one_line(command: tuple[str, ...], tmp_path: Path) -> None:
    done = approvals(*command, cwd=tmp_path, APPROVALS_LOG_FORMAT="yaml")
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        "error: setting APPROVALS_LOG_FORMAT: Input should be 'text' or 'json' (got 'yaml')"]


def test_the_log_format_is_read_from_dot_env_and_ignores_case(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APPROVALS_LOG_FORMAT=JSON\n")
    (tmp_path / "approvals-policy.yaml").write_text("version: 1\nrules: []\n")
    done = approvals("policy", "check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / ".env").write_text("APPROVALS_LOG_FORMAT=logfmt\n")
    done = approvals("policy", "check", cwd=tmp_path)
    assert done.returncode == 3
    assert "APPROVALS_LOG_FORMAT" in done.stderr
