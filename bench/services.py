"""The processes a benchmark starts and stops itself, all on loopback.

    RedisServer        a fresh redis-server with AOF (everysec), as in production
    SandboxProcess     `python -m slack_approvals.sandbox`: the fake Slack Web API in its own process
    BotProcess         the real `approvals bot --port P` command, in HTTP mode
    prefect_harness    Prefect's temporary server (SQLite), heartbeat off
    postgres_prefect   `prefect server start` on a fresh PostgreSQL database
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import redis

from slack_approvals.approvals.serving import free_port
from slack_approvals.state.private_server import find_server_binary, server_command

from .common import wait_until

SIGNING_SECRET = "5d41402abc4b2a76b9719d911017c592"
BOT_TOKEN = "xoxb-bench-bot-token"
START_TIMEOUT = 60.0


def _stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process group we created (lets servers flush), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class RedisServer:
    """`with RedisServer() as server:` a private redis-server on a free port, removed after."""

    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.port = free_port()
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, **kwargs)

    def start(self) -> RedisServer:
        command = server_command(find_server_binary(), self.port, self.folder) + self.extra_args
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        probe = self.client(socket_connect_timeout=0.2)

        def answers() -> bool:
            try:
                return bool(probe.ping())
            except redis.RedisError:
                return False

        try:
            wait_until(answers, START_TIMEOUT, f"redis-server on port {self.port}", 0.02)
        finally:
            probe.close()
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class SandboxProcess:
    """The sandbox in its own process, so the Web API it serves does not share our interpreter."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> SandboxProcess:
        log = open(self.folder / "sandbox.log", "wb")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "slack_approvals.sandbox", "--host", "127.0.0.1", "--port", str(self.port),
             "--signing-secret", SIGNING_SECRET, "--bot-token", BOT_TOKEN],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent)
        log.close()

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the sandbox exited: {_tail(self.folder / 'sandbox.log')}")
            try:
                r = httpx.post(f"{self.api_url}auth.test", timeout=1,
                               headers={"Authorization": f"Bearer {BOT_TOKEN}"})
                return r.status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, START_TIMEOUT, "the sandbox", 0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def approvals_command() -> list[str]:
    """The installed `approvals` script next to this interpreter (the real CLI)."""
    script = Path(sys.executable).parent / "approvals"
    if script.exists():
        return [str(script)]
    found = shutil.which("approvals")
    if found is None:
        raise RuntimeError("the `approvals` command is not installed (pip install -e .)")
    return [found]


class BotProcess:
    """`approvals bot --port P` in HTTP mode, configured only through its environment.

    The bot emits a Prefect event per decision, so it is given the benchmark's Prefect server,
    as a deployment would be; without one, Prefect would start a temporary server inside it.
    """

    def __init__(self, api_url: str, redis_url: str, prefect_api_url: str,
                 settings: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="bench-bot-"))
        self.api_url = api_url
        self.redis_url = redis_url
        self.prefect_api_url = prefect_api_url
        self.settings = settings or {}  # more APPROVALS_* settings, e.g. the metrics port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "bot.log"

    def start(self) -> BotProcess:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLACK_", "APPROVALS_", "REDIS_URL", "PREFECT_API_"))}
        env.update({
            "PREFECT_API_URL": self.prefect_api_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.api_url,
            "REDIS_URL": self.redis_url,
            "APPROVALS_DATA_DIR": str(self.folder / "data"),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            **self.settings,
        })
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        # cwd is an empty folder so no developer `.env` leaks into the measured configuration.
        self.process = subprocess.Popen(
            [*approvals_command(), "bot", "--host", "127.0.0.1", "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd=self.folder, start_new_session=True)
        log.close()

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"approvals bot exited: {_tail(self.log_path)}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, START_TIMEOUT, "approvals bot /healthz", 0.05)
        return self

    def errors_logged(self) -> list[str]:
        return [line for line in _tail(self.log_path, 10_000).splitlines()
                if " ERROR " in line or "Traceback" in line]

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> BotProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self.cleanup()


# -- Prefect servers -----------------------------------------------------------------------

QUIET_PREFECT: dict[str, Any] = {
    # Sync flows are otherwise padded to the next whole second by the heartbeat thread.
    "flows.heartbeat_frequency": None,
}
# For the temporary server, which receives these too: it starts seconds sooner without
# registering block types, which no benchmark uses.
TEMPORARY_SERVER: dict[str, Any] = {
    "server.register_blocks_on_start": False,
    "server.analytics_enabled": False,
}


# Set to a Prefect API URL to run every benchmark's flows on that server instead of starting
# Prefect's temporary one each time (the smoke test shares one server this way).
SHARED_SERVER_ENV = "BENCH_PREFECT_API_URL"


@contextlib.contextmanager
def prefect_harness() -> Iterator[str]:
    """Prefect's temporary SQLite server (a subprocess), heartbeat off; yields the API URL."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    shared = os.environ.get(SHARED_SERVER_ENV)
    if shared:
        with temporary_settings(updates={PREFECT_API_URL: shared, **QUIET_PREFECT}):
            yield shared
        return
    with temporary_settings(updates={**QUIET_PREFECT, **TEMPORARY_SERVER}), \
            prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


async def _recreate_database(admin_url: str, name: str, drop_only: bool = False) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def postgres_available(host: str = "127.0.0.1", port: int = 5432) -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(f"postgresql://postgres@{host}:{port}/postgres", timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@contextlib.contextmanager
def postgres_prefect(database: str = "bench_prefect", host: str = "127.0.0.1",
                     port: int = 5432) -> Iterator[str]:
    """`prefect server start` on a fresh PostgreSQL database; the flows of the block use it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    admin = f"postgresql://postgres@{host}:{port}/postgres"
    # One database per process: two runs on one machine never share (or drop) each other's.
    database = f"{database}_{os.getpid()}"
    asyncio.run(_recreate_database(admin, database))
    folder = Path(tempfile.mkdtemp(prefix="bench-prefect-"))
    api_port = free_port()
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(folder),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@{host}:{port}/{database}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    })
    env.pop("PREFECT_API_URL", None)
    log_path = folder / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
    prefect = Path(sys.executable).parent / "prefect"
    process = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder,
        start_new_session=True)
    log.close()
    api_url = f"http://127.0.0.1:{api_port}/api"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited: {_tail(log_path)}")
        try:
            return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 120, "prefect server on PostgreSQL", 0.2)
        with temporary_settings(updates={PREFECT_API_URL: api_url, **QUIET_PREFECT}):
            yield api_url
    finally:
        _stop(process, timeout=20)
        time.sleep(0.5)  # the server's connections close before the database can be dropped
        with contextlib.suppress(Exception):
            asyncio.run(_recreate_database(admin, database, drop_only=True))
        shutil.rmtree(folder, ignore_errors=True)
