"""The hand-back after a worker or `approvals serve` stops its runs, on the session's real
Prefect server: only a run still Running or Pending, or Crashed by the stop, is set to
AwaitingRetry; a run cancelled, suspended, paused, rescheduled or ended meanwhile keeps its
state, and a hung server cannot hold a stop for long."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import (
    AwaitingRetry,
    Cancelling,
    Completed,
    Crashed,
    Paused,
    Pending,
    Running,
    Scheduled,
    Suspended,
)

from slack_approvals.approvals.handing_back import reschedule


@flow(name="hand-back-probe")
def probe() -> None:
    """Never run: its runs are only created and put into states."""


STATES: dict[str, Callable[[], State[Any]]] = {
    "Running": Running, "Pending": Pending, "Crashed": Crashed, "Cancelling": Cancelling,
    "Suspended": Suspended, "Paused": Paused, "Scheduled": Scheduled, "Completed": Completed,
    "AwaitingRetry": AwaitingRetry,
}


def test_only_running_pending_and_crashed_runs_are_handed_back(prefect_database: str) -> None:
    runs: dict[str, uuid.UUID] = {}
    with get_client(sync_client=True) as client:
        for name, state in STATES.items():
            run = client.create_flow_run(probe, name=f"hand-back-{name}")
            client.set_flow_run_state(run.id, state(), force=True)
            runs[name] = run.id

    handed_back = asyncio.run(reschedule(set(runs.values())))

    assert sorted(handed_back) == sorted(runs[n] for n in ("Running", "Pending", "Crashed"))
    with get_client(sync_client=True) as client:
        after = {name: client.read_flow_run(run_id).state for name, run_id in runs.items()}
    for name in ("Running", "Pending", "Crashed"):
        assert after[name] is not None and after[name].name == "AwaitingRetry", name
    # A cancel is not undone, a suspended run waits for its decision, the rest keep theirs.
    for name in ("Cancelling", "Suspended", "Paused", "Scheduled", "Completed", "AwaitingRetry"):
        assert after[name] is not None and after[name].name == name, (name, after[name])


class SilentServer:
    """An API that accepts connections and never answers; it notes, at each connection, how
    many of the earlier ones the client still holds open."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.accepted: list[socket.socket] = []
        self.open_at_accept: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/api"

    @staticmethod
    def _still_open(conn: socket.socket) -> bool:
        try:
            return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn = self.listener.accept()[0]
            except TimeoutError:
                continue
            self.open_at_accept.append(sum(map(self._still_open, self.accepted)) + 1)
            self.accepted.append(conn)


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.thread.join()
        for conn in server.accepted:
            conn.close()
        server.listener.close()


def test_a_hung_server_gets_one_bounded_call_per_run_all_at_once(
        silent_server: SilentServer, caplog: pytest.LogCaptureFixture) -> None:
    run_ids = {uuid.uuid4() for _ in range(8)}
    with temporary_settings({PREFECT_API_URL: silent_server.url}):
        handed_back = asyncio.run(reschedule(run_ids))
    assert handed_back == []
    # One request per run (no client retries) and all of them open together: the stop waits
    # one HAND_BACK_TIMEOUT_SECONDS, not the client's 60 s per call, retried, run after run.
    assert len(silent_server.accepted) == len(run_ids)
    assert max(silent_server.open_at_accept) == len(run_ids)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for run_id in run_ids:
        assert f"could not hand flow run {run_id} back" in logged
