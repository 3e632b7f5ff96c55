"""PrefectResumer on the session's real Prefect server: the watched runs read in one call,
a crash that puts a run down to be run again not taken as its end, a run the server does not
know answered as missing (never as gone), and one client kept across calls."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.settings import get_current_settings
from prefect.states import Cancelled, Completed, Crashed, Running, Suspended

from slack_approvals.approvals.resuming import PrefectResumer
from slack_approvals.state.resuming import MISSING, ResumeOutcome, server_identity


@flow(name="resumer-probe")
def probe() -> None:
    """Never run: its runs are only created and put into states."""


def _runs(states: dict[str, State[Any]]) -> dict[str, str]:
    runs: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for name, state in states.items():
            run = client.create_flow_run(probe, name=f"resumer-{name}")
            client.set_flow_run_state(run.id, state, force=True)
            runs[name] = str(run.id)
    return runs


def test_ended_reads_all_runs_at_once_with_the_hooks_crash_rules(prefect_database: str) -> None:
    runs = _runs({
        "suspended": Suspended(timeout_seconds=3600), "running": Running(),
        "cancelled": Cancelled(), "completed": Completed(),
        "stopped": Crashed(message="Execution was aborted by a termination signal."),
        "crashed": Crashed(message="Flow run infrastructure exited with non-zero status code 1."),
    })
    unknown = str(uuid.uuid4())
    resumer = PrefectResumer()
    try:
        answer = resumer.ended([*runs.values(), unknown, runs["running"], "not-a-uuid"])
        assert answer == {runs["cancelled"]: "Cancelled", runs["completed"]: "Completed",
                          runs["crashed"]: "Crashed", unknown: MISSING}
        # A run the server does not know is missing, not gone: the schedule decides when.
        assert resumer.resume(unknown) is ResumeOutcome.MISSING
        assert resumer.resume(runs["completed"]) is ResumeOutcome.GONE
        assert resumer.resume(runs["running"]) is ResumeOutcome.NOT_SUSPENDED
        assert resumer._open() is resumer._open()  # one client for every call
    finally:
        resumer.close()
    assert resumer.server == server_identity(get_current_settings().api.url) != ""
