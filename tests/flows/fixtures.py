"""Fixtures of the flow tests: one Prefect server per session, the Slack sandbox, and the
flows' services pointed at both (fakeredis by default, the real server where asked)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before Prefect is imported: its home and logging come from the environment at import.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="approvals-prefect-home-")
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

from collections.abc import Iterator

import fakeredis
import pytest

from slack_approvals.sandbox.server import SandboxServer
from tests.conftest import Backend, RedisServer

from .harness import prefect_server
from .support import FlowEnv

atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_database() -> Iterator[str]:
    with prefect_server() as database:
        yield database


@pytest.fixture(scope="session")
def slack_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as sandbox:
        yield sandbox


@pytest.fixture
def sb(slack_sandbox: SandboxServer) -> SandboxServer:
    slack_sandbox.reset()
    return slack_sandbox


@pytest.fixture
def env(prefect_database: str, sb: SandboxServer, tmp_path: object) -> Iterator[FlowEnv]:
    """Flows on fakeredis, Slack in the sandbox, data under the test's tmp_path."""
    with FlowEnv.installed(sb, Backend("fake", None, fakeredis.FakeServer()), tmp_path) as flow_env:
        yield flow_env


@pytest.fixture
def real_env(prefect_database: str, sb: SandboxServer, redis_server: RedisServer,
             tmp_path: object) -> Iterator[FlowEnv]:
    """The same on the session's real redis-server, flushed first."""
    with redis_server.client() as client:
        client.flushall()
    with FlowEnv.installed(sb, Backend("real", redis_server.url, None), tmp_path) as flow_env:
        yield flow_env
