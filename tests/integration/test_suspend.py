"""Waiting in production holds no process: served runs past a short hold window suspend, and
the decision resumes them, through the whole stack (`approvals serve`, two bots, Redis with
AOF, the sandbox, a Prefect server on PostgreSQL).

The timings printed (`-s`) are measured on this machine; bench/suspended_gates.py has more."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest
from prefect.client.schemas.objects import StateType
from prefect.server.api.server import SubprocessASGIServer

from slack_approvals.state import ApprovalRequest, Status

from .stack import Stack, stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

HOLD_SECONDS = 2


@pytest.fixture(scope="module")
def live() -> Iterator[Stack]:
    with stack({"APPROVALS_HOLD_SECONDS": str(HOLD_SECONDS)}) as running:
        yield running


def _run_processes(live: Stack) -> set[int]:
    """Every process `approvals serve` has started (its flow runs, and their helpers)."""
    assert live.serve.process is not None
    return {p.pid for p in psutil.Process(live.serve.process.pid).children(recursive=True)}


def _suspended(live: Stack, run_ids: list[str], timeout: float = 120.0) -> None:
    def all_suspended() -> bool:
        runs = live.read_runs(run_ids)
        return all(run.state is not None and run.state.type is StateType.PAUSED
                   and run.state.name == "Suspended" for run in runs.values())

    wait_for(f"{len(run_ids)} runs to be suspended", all_suspended, timeout=timeout, every=0.25)


def _suspended_request(live: Stack, title: str) -> tuple[str, ApprovalRequest]:
    """One served run of simple-approval, suspended at its gate with no process left."""
    idle = _run_processes(live)
    run_ids = live.start_runs(1, title)
    request = live.requests_of(run_ids)[run_ids[0]]
    _suspended(live, run_ids)
    wait_for("the run's process to exit", lambda: not (_run_processes(live) - idle), timeout=60)
    now = live.store.get(request.id)
    assert now.status is Status.PENDING and now.suspended_run == run_ids[0]
    assert [e for e in live.audit(request.id) if e.event == "suspended"]
    return run_ids[0], now


def test_a_suspended_run_is_resumed_by_a_click(live: Stack) -> None:
    """Past the hold window the run is Suspended and no process of it remains; a signed click
    at a bot resumes it, it re-enters the flow, reads the decision and completes."""
    run_id, request = _suspended_request(live, "suspend")
    clicked = time.monotonic()
    assert live.click(request, live.bots[0]) == 200
    runs = live.wait_runs_final([run_id], timeout=120)
    print(f"\nsuspended run: click -> Completed in {time.monotonic() - clicked:.2f} s")
    live.check_outcome({run_id: request}, Status.APPROVED, StateType.COMPLETED)
    result = runs[run_id].state
    assert result is not None and result.is_completed()
    # The resume was fired once; the re-entered gate let go of the request: nothing is owed.
    found = live.store.resume_state(request.id)
    assert found is not None and (found.pending, found.run, found.due) == (False, None, None)


def test_a_decision_while_prefect_is_down_is_resumed_once_it_is_back(live: Stack) -> None:
    """The Prefect server is down when the click is recorded: the resume stays in Redis and the
    bots' sweepers resume the run once the server answers again."""
    run_id, request = _suspended_request(live, "prefect down")
    server = SubprocessASGIServer(port=int(live.prefect_api_url.split(":")[-1].split("/")[0]))
    assert server.server_process is not None
    server.server_process.terminate()
    server.server_process.wait(timeout=30)
    server.running = False
    try:
        assert live.click(request, live.bots[1]) == 200
        wait_for("the decision", lambda: live.store.get(request.id).status.closed, timeout=30)
        found = live.store.resume_state(request.id)
        assert found is not None and found.pending is False and found.due is not None  # owed
        time.sleep(6)  # at least one failed attempt by a sweeper
    finally:
        server.start(timeout=90)
    back = time.monotonic()
    live.wait_runs_final([run_id], timeout=120)
    print(f"\nprefect down at the click: run completed {time.monotonic() - back:.1f} s after "
          "the server was back")
    live.check_outcome({run_id: request}, Status.APPROVED, StateType.COMPLETED)


def test_cancelling_a_suspended_run_closes_its_request_and_never_passes(live: Stack) -> None:
    """A suspended run has no process to run its hooks: Prefect cancels it at once, and the
    sweepers' watch closes its request; a later click changes nothing."""
    run_id, request = _suspended_request(live, "cancel suspended")
    live.cancel_run(run_id)
    runs = live.wait_runs_final([run_id], timeout=60)
    state = runs[run_id].state
    assert state is not None and state.type is StateType.CANCELLED, state
    wait_for("the request to close", lambda: live.store.get(request.id).status.closed,
             timeout=120, every=0.5)
    closed = live.store.get(request.id)
    assert closed.status is Status.CANCELLED
    assert live.click(request, live.bots[0]) == 200  # answered "already closed"
    time.sleep(3)
    after = live.read_runs([run_id])[run_id].state
    assert after is not None and after.type is StateType.CANCELLED, after
    events = live.audit(request.id)
    assert not [e for e in events if e.event == "vote"], events


def test_a_department_review_suspends_and_each_decision_resumes_it(live: Stack) -> None:
    """The children's gates end pending past the hold window; the parent suspends with no
    process left; one department's click resumes it and it suspends again for the other (a
    fresh key); the second click completes it with both decisions."""
    import asyncio

    from prefect.deployments import run_deployment

    from slack_approvals.state.plans import new_request_id

    async def start() -> str:
        run = await run_deployment("department-review/slack-approvals", timeout=0,
                                   parameters={"params": {"departments": [{"name": "finance"},
                                                                          {"name": "sales"}]}})
        return str(run.id)  # type: ignore[union-attr]

    idle = _run_processes(live)
    run_id = asyncio.run(start())
    ids = {d: new_request_id(f"{run_id}:department:{d}") for d in ("finance", "sales")}

    def posted() -> dict[str, ApprovalRequest] | None:
        try:
            found = {d: live.store.get(i) for d, i in ids.items()}
        except Exception:
            return None
        return found if all(r.message_ts for r in found.values()) else None

    requests = wait_for("both departments' requests", posted, timeout=120)
    _suspended(live, [run_id])
    wait_for("the review's processes to exit", lambda: not (_run_processes(live) - idle), timeout=60)
    assert all(live.store.get(r.id).suspended_run == run_id for r in requests.values())

    def suspends(request_id: str) -> int:
        return len([e for e in live.audit(request_id) if e.event == "suspended"])

    assert live.click(requests["finance"], live.bots[0]) == 200
    wait_for("the review to suspend again for sales", lambda: suspends(ids["sales"]) >= 2,
             timeout=120)
    _suspended(live, [run_id])
    clicked = time.monotonic()
    assert live.click(requests["sales"], live.bots[1]) == 200
    runs = live.wait_runs_final([run_id], timeout=120)
    print(f"\ndepartment review: second click -> Completed in {time.monotonic() - clicked:.2f} s")
    state = runs[run_id].state
    assert state is not None and state.type is StateType.COMPLETED, state
    for request_id in ids.values():
        assert live.store.get(request_id).status is Status.APPROVED
