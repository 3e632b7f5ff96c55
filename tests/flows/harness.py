"""The session's Prefect server: on a private PostgreSQL when its binaries are on PATH, else
Prefect's own SQLite test harness.

SQLite serialises writes: five child flows started at once meet "database is locked" on
POST /task_runs, and the client backs off 2 s, 4 s... so concurrent children stop overlapping.
PostgreSQL does not, which is what the department review's overlap test needs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import prefect.context
import prefect.settings
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.server.api.server import SubprocessASGIServer
from prefect.server.database.dependencies import temporary_database_interface
from prefect.settings import temporary_settings
from prefect.testing.utilities import prefect_test_harness

# Faster and quieter than the defaults; every one of these reaches the server subprocess too.
SERVER_SETTINGS: dict[str, Any] = {
    "server.register_blocks_on_start": False,
    "server.analytics_enabled": False,
    # Events reach the database within a fraction of a second, so tests can read them back.
    "server.services.event_persister.flush_interval": 0.2,
    # Heartbeats pad every sync flow run to a whole second; the tests do not need them.
    "flows.heartbeat_frequency": None,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_bin(name: str) -> str | None:
    """From PATH, else Debian's versioned folder, which is not on PATH by default."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def postgres_available() -> bool:
    return bool(postgres_bin("initdb") and postgres_bin("postgres"))


@contextmanager
def private_postgres() -> Iterator[str]:
    """A throwaway cluster on a free port (fsync off); yields its SQLAlchemy URL."""
    folder = Path(tempfile.mkdtemp(prefix="approvals-pg-"))
    # initdb refuses to run as root; an unprivileged account owns the cluster instead.
    owner: dict[str, Any] = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        owner = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    port = _free_port()
    process = None
    try:
        subprocess.run([str(postgres_bin("initdb")), "-D", str(folder / "data"), "-A", "trust",
                        "-U", "prefect", "--no-sync", "-E", "UTF8"], check=True, cwd=folder,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **owner)
        process = subprocess.Popen(
            [str(postgres_bin("postgres")), "-D", str(folder / "data"), "-p", str(port), "-k", str(folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **owner)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the private PostgreSQL did not start") from None
                time.sleep(0.05)
        yield f"postgresql+asyncpg://prefect@127.0.0.1:{port}/postgres"
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def prefect_server() -> Iterator[str]:
    """Yields which database backs the server: "postgresql" or "sqlite"."""
    with ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory(prefix="approvals-prefect-home-"))
        stack.enter_context(temporary_settings(updates={**SERVER_SETTINGS, "home": home}))
        if not postgres_available():
            stack.enter_context(prefect_test_harness())
            yield "sqlite"
            return
        url = stack.enter_context(private_postgres())
        # What prefect_test_harness does, on PostgreSQL instead of SQLite.
        stack.enter_context(temporary_database_interface())
        stack.enter_context(temporary_settings(
            updates={prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: url}))
        server = SubprocessASGIServer(port=_free_port())
        server.start(timeout=90)
        stack.callback(server.stop)
        stack.enter_context(temporary_settings(updates={prefect.settings.PREFECT_API_URL: server.api_url}))
        # temporary_settings sets a context variable, which threads do not inherit: the bot's
        # workers and the in-process launcher's loop would start a temporary server of their
        # own. prefect_test_harness makes its settings process-global the same way.
        stack.enter_context(prefect.context._temporary_global_settings_context(
            prefect.context.get_settings_context()))
        # Logs and events still queued go out while the server still answers (LIFO order).
        stack.callback(EventsWorker.drain_all)
        stack.callback(APILogWorker.drain_all)
        yield "postgresql"
