"""Prefect's side of resuming: the RunResumer that state/resuming.py drives.

    PrefectResumer      resume_flow_run on the Prefect server PREFECT_API_URL names, asked
                        once and briefly (the schedule retries, not the client), through one
                        client kept for the process
    prefect_server()    the identity recorded with each suspend (state/resuming.py)
    default_resumer()   one when PREFECT_API_URL is set; None without a server (runs are then
                        in-process and never suspend)
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, get_current_settings, temporary_settings

from slack_approvals.flows.hooks import resumable_crash
from slack_approvals.state.resuming import MISSING, ResumeOutcome, RunResumer, server_identity

# Each call answers within this; a slow or absent server is the schedule's to retry.
PREFECT_CALL_TIMEOUT_SECONDS = 5.0


def prefect_server() -> str:
    """The Prefect server PREFECT_API_URL names, as recorded next to a suspended run."""
    return server_identity(get_current_settings().api.url)


def _end(state: State[Any] | None) -> str | None:
    """A state's name when the run will not wait on its request any more; a crash that puts
    it down to be run again (as the flow hooks read it) is not an end."""
    if state is None or resumable_crash(state):
        return None
    if state.is_final() or state.is_cancelling():
        return str(state.name)
    return None


class PrefectResumer:
    """Resumes suspended (Paused, rescheduling) flow runs through the Prefect API."""

    def __init__(self) -> None:
        self._server = prefect_server()
        self._lock = threading.Lock()
        self._client: SyncPrefectClient | None = None

    @property
    def server(self) -> str:
        return self._server

    def _open(self) -> SyncPrefectClient:
        """The process's one client (its connections kept), opened on first use."""
        with self._lock:
            if self._client is None:
                client = get_client(sync_client=True,
                                    httpx_settings={"timeout": PREFECT_CALL_TIMEOUT_SECONDS})
                client.__enter__()
                self._client = client
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.__exit__(None, None, None)

    def resume(self, flow_run_id: str) -> ResumeOutcome:
        try:
            run_id = uuid.UUID(flow_run_id)
        except ValueError:
            return ResumeOutcome.GONE  # not a Prefect run id: nothing Prefect could resume
        client = self._open()
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
            try:
                state = client.read_flow_run(run_id).state
            except ObjectNotFound:
                return ResumeOutcome.MISSING
            if state is None or state.is_final():
                return ResumeOutcome.GONE
            if not state.is_paused():
                return ResumeOutcome.NOT_SUSPENDED
            result = client.resume_flow_run(run_id)
        if result.status is SetStateStatus.ACCEPT:
            return ResumeOutcome.RESUMED
        if result.state is not None and result.state.is_final():
            return ResumeOutcome.GONE  # its suspend timed out: Prefect failed it
        return ResumeOutcome.NOT_SUSPENDED

    def ended(self, flow_run_ids: Sequence[str]) -> dict[str, str]:
        wanted: dict[uuid.UUID, str] = {}
        for flow_run_id in dict.fromkeys(flow_run_ids):
            try:
                wanted[uuid.UUID(flow_run_id)] = flow_run_id
            except ValueError:
                continue  # not a Prefect run id: never ours to judge
        if not wanted:
            return {}
        client = self._open()
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(wanted))),
                limit=len(wanted))
        found = {run.id: run for run in runs}
        answer: dict[str, str] = {}
        for run_id, flow_run_id in wanted.items():
            run = found.get(run_id)
            end = MISSING if run is None else _end(run.state)
            if end is not None:
                answer[flow_run_id] = end
        return answer


def default_resumer() -> RunResumer | None:
    """Prefect's resumer when a Prefect server is named (runs can only suspend on one)."""
    return PrefectResumer() if get_current_settings().api.url else None
