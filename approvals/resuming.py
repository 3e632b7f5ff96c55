"""Prefect's side of resuming: the RunResumer that state/resuming.py drives.

    PrefectResumer      resume_flow_run on the Prefect server PREFECT_API_URL names, asked
                        once and briefly (the schedule retries, not the client)
    default_resumer()   one when PREFECT_API_URL is set; None without a server (runs are then
                        in-process and never suspend)
"""

from __future__ import annotations

import uuid

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, get_current_settings, temporary_settings

from slack_approvals.state.resuming import ResumeOutcome, RunResumer

# Each call answers within this; a slow or absent server is the schedule's to retry.
PREFECT_CALL_TIMEOUT_SECONDS = 5.0


class PrefectResumer:
    """Resumes suspended (Paused, rescheduling) flow runs through the Prefect API."""

    def _client(self) -> SyncPrefectClient:
        return get_client(sync_client=True,
                          httpx_settings={"timeout": PREFECT_CALL_TIMEOUT_SECONDS})

    def resume(self, flow_run_id: str) -> ResumeOutcome:
        try:
            run_id = uuid.UUID(flow_run_id)
        except ValueError:
            return ResumeOutcome.GONE  # not a Prefect run id: nothing Prefect could resume
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}), self._client() as client:
            try:
                state = client.read_flow_run(run_id).state
            except ObjectNotFound:
                return ResumeOutcome.GONE
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

    def ended(self, flow_run_id: str) -> str | None:
        try:
            run_id = uuid.UUID(flow_run_id)
        except ValueError:
            return None
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}), self._client() as client:
            try:
                state = client.read_flow_run(run_id).state
            except ObjectNotFound:
                return "Deleted"
        if state is not None and (state.is_final() or state.is_cancelling()):
            return str(state.name)
        return None


def default_resumer() -> RunResumer | None:
    """Prefect's resumer when a Prefect server is named (runs can only suspend on one)."""
    return PrefectResumer() if get_current_settings().api.url else None
