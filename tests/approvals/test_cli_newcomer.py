"""What a newcomer meets first on the command line: one line and exit 3 for every mistake,
help that lists a flow's parameters, and no signing secret needed in Socket Mode."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_bolt.request import BoltRequest

from slack_approvals.approvals.runtime import build_runtime
from slack_approvals.approvals.settings import SettingsError, load_settings
from slack_approvals.sandbox.config import DEFAULT_BOT_TOKEN
from slack_approvals.sandbox.server import SandboxServer

EXIT_ERROR = 3


def approvals(tmp_path: Path, *args: str, timeout: float = 120,
              **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "REDIS_URL", "APPROVALS_", "PREFECT_API"))}
    clean.update({"APPROVALS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "120", **env})
    return subprocess.run([sys.executable, "-m", "slack_approvals", *args], cwd=tmp_path,
                          env=clean, capture_output=True, text=True, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == EXIT_ERROR, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def test_run_without_a_slack_token_says_so_before_prefect_starts(tmp_path: Path) -> None:
    result = approvals(tmp_path, "run", "simple-approval", "-p", "title=Rotate keys")
    assert "SLACK_BOT_TOKEN is missing" in one_line_error(result)
    assert result.stdout == ""  # not even "running ... on Prefect's temporary server"
    assert "prefect" not in result.stderr.lower()


def test_run_with_bare_key_values_suggests_p(tmp_path: Path) -> None:
    result = approvals(tmp_path, "run", "deploy-approval", "version=2.4.0")
    assert one_line_error(result) == \
        "error: parameters go after -p: approvals run deploy-approval -p version=2.4.0"


def test_run_flow_help_lists_its_parameters(tmp_path: Path) -> None:
    result = approvals(tmp_path, "run", "deploy-approval", "--help")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()
            if line.startswith("  ") and line.split()}
    assert "caller may set" in rows["parameter"]
    assert "one of development, staging, production" in rows["environment"]
    assert "staging" in rows["environment"] and rows["environment"].endswith("yes")
    assert "1.0.0" in rows["version"]
    assert rows["requester"].endswith("no")  # who asks is set by the launcher, not the caller
    plain = approvals(tmp_path, "run", "--help")
    assert plain.returncode == 0 and "--param" in plain.stdout


def test_run_with_an_unknown_key_lists_the_valid_ones(tmp_path: Path) -> None:
    result = approvals(tmp_path, "run", "simple-approval", "-p", "colour=blue",
                       SLACK_BOT_TOKEN="xoxb-not-used")
    line = one_line_error(result)
    assert "colour" in line and "title, summary" in line


def test_bot_with_a_refused_token_says_so_in_one_line(tmp_path: Path,
                                                       sandbox: SandboxServer) -> None:
    result = approvals(tmp_path, "bot", "--port", "0", SLACK_BOT_TOKEN="xoxb-wrong",
                       SLACK_SIGNING_SECRET="0123456789abcdef", SLACK_API_URL=sandbox.api_url)
    line = one_line_error(result)
    assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in line
    assert len(result.stderr.splitlines()) <= 3, result.stderr  # not a 144-line traceback


def test_bot_with_a_refused_app_token_says_so_in_one_line(tmp_path: Path,
                                                           sandbox: SandboxServer) -> None:
    result = approvals(tmp_path, "bot", SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
                       SLACK_APP_TOKEN="xapp-wrong", SLACK_API_URL=sandbox.api_url)
    assert "Slack refused SLACK_APP_TOKEN (invalid_auth)" in one_line_error(result)


def test_demo_names_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = approvals(tmp_path, "demo", "--port", str(port))
    line = one_line_error(result)
    assert f"port {port} is already in use" in line and "--port" in line
    assert not (tmp_path / "data" / "redis").exists()  # no Redis was started


def test_socket_mode_needs_no_signing_secret(monkeypatch: pytest.MonkeyPatch,
                                             sandbox: SandboxServer, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("SLACK_SIGNING_SECRET", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(slack_bot_token=DEFAULT_BOT_TOKEN, slack_api_url=sandbox.api_url,
                             slack_app_token="xapp-1-socket", redis_url="redis://127.0.0.1:1/0")
    runtime = build_runtime(settings, socket_mode=True)
    try:
        # An HTTP request (not served in Socket Mode) is refused: no secret matches.
        response = runtime.app.dispatch(BoltRequest(
            body="payload=%7B%7D",
            headers={"content-type": "application/x-www-form-urlencoded",
                     "x-slack-request-timestamp": str(int(time.time())),
                     "x-slack-signature": "v0=00"}))
        assert response.status == 401
    finally:
        runtime.deps.background.shutdown(wait=False)
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET is missing"):
        build_runtime(settings)  # HTTP mode verifies every request with it


def test_settings_messages_speak_to_people(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-user-token")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == "setting SLACK_BOT_TOKEN: must be a bot token starting with xoxb-"
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    monkeypatch.setenv("APPROVALS_RETENTION_DAYS", "a month")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "Value error" not in str(caught.value) and "(got 'a month')" in str(caught.value)


def test_a_bad_choice_names_the_choices_not_a_python_class(tmp_path: Path) -> None:
    result = approvals(tmp_path, "request", "--title", "x", "--timeout-outcome", "maybe")
    assert result.returncode == EXIT_ERROR
    assert "'maybe' is not one of 'approve', 'reject'" in result.stderr
    assert "Outcome" not in result.stderr and "Value error" not in result.stderr
