"""Faults on the whole stack: every decision reaches its run through `approvals serve`, two bots
and Redis restarts, and every request ends in exactly one final state.

The timings printed (`-s`) are the issue's table re-measured on this machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest
from prefect.client.schemas.objects import StateType

from slack_approvals.state import Status

from .stack import Stack, restart_bot, stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def live() -> Iterator[Stack]:
    with stack() as running:
        yield running


def test_serve_restart_hands_waiting_runs_back(live: Stack) -> None:
    """SIGTERM to `approvals serve` with two gates waiting: the runs go back to Prefect, the
    next serve runs them again, they find their requests, and a click completes them."""
    run_ids = live.start_runs(2, "serve restart")
    requests = live.requests_of(run_ids)
    stopped_in = live.serve.terminate()
    states = live.state_types(run_ids)
    assert set(states.values()) == {StateType.SCHEDULED}, states
    assert all(live.store.get(r.id).status is Status.PENDING for r in requests.values())
    live.serve.start()
    restarted = time.monotonic()
    again = live.requests_of(run_ids)
    assert {r.id for r in again.values()} == {r.id for r in requests.values()}
    live.wait_runs_running(run_ids)
    print(f"\nserve restart: stopped in {stopped_in:.1f} s; runs waiting again "
          f"{time.monotonic() - restarted:.1f} s after the new serve polled")
    for i, request in enumerate(requests.values()):
        assert live.click(request, live.bots[i % 2]) == 200
    live.check_outcome(requests, Status.APPROVED, StateType.COMPLETED)


def test_redis_kill9_and_restart_while_gates_wait(live: Stack) -> None:
    """Redis killed (-9) and restarted on its AOF under three waiting gates: no run fails, and
    clicks afterwards, alternating between the two bots, complete every run."""
    run_ids = live.start_runs(3, "redis restart")
    requests = live.requests_of(run_ids)
    live.redis.kill9()
    time.sleep(1.5)
    live.redis.start()
    time.sleep(2)  # the gates find Redis again within their backoff (at most 5 s)
    states = live.state_types(run_ids)
    assert set(states.values()) == {StateType.RUNNING}, states
    for i, request in enumerate(requests.values()):
        assert live.click(request, live.bots[i % 2]) == 200
    live.check_outcome(requests, Status.APPROVED, StateType.COMPLETED)


def test_clicks_alternating_between_bots_record_one_vote(live: Stack) -> None:
    """Each request clicked once at each bot, in turn: one vote, one decision, one run."""
    run_ids = live.start_runs(4, "two bots")
    requests = live.requests_of(run_ids)
    for i, request in enumerate(requests.values()):
        first, second = live.bots[i % 2], live.bots[(i + 1) % 2]
        assert live.click(request, first) == 200
        assert live.click(request, second) == 200  # answered "already decided", not recorded
    live.check_outcome(requests, Status.APPROVED, StateType.COMPLETED)


def test_bot_kill9_mid_burst_loses_no_acknowledged_click(live: Stack) -> None:
    """A burst of clicks at one bot, killed (-9) halfway: every click it answered is recorded;
    the ones it never answered are clicked again at the other bot, as a person would."""
    run_ids = live.start_runs(6, "bot crash")
    requests = list(live.requests_of(run_ids).values())
    victim, survivor = live.bots
    unanswered = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {pool.submit(live.click, request, victim, 5.0): request for request in requests}
        next(as_completed(futures))  # mid-burst: the first click answered, the rest in flight
        assert victim.process is not None
        victim.process.kill()
        victim.process.wait()
        for future, request in futures.items():
            if future.result() != 200:
                unanswered.append(request)
    for request in unanswered:
        assert live.click(request, survivor) == 200
    print(f"\nbot kill -9 mid-burst: {len(requests) - len(unanswered)} clicks answered before the "
          f"kill, {len(unanswered)} clicked again at the other bot")
    restart_bot(victim)
    live.check_outcome({r.spec.flow_run_id or "": r for r in requests}, Status.APPROVED,
                       StateType.COMPLETED)


def test_slack_outage_longer_than_post_retries(live: Stack) -> None:
    """Slack answers 503 to every post for longer than the gate retries: the run never waits
    unseen, and its request is closed once, never approved: cancelled with Slack's error (the
    run fails), or timed out first when its deadline (60 s here) comes before the retries end
    (the gate then reads that rejection)."""
    live.inject_fault("chat.postMessage", 503, count=1000)
    try:
        run_ids = live.start_runs(1, "slack outage")
        started = time.monotonic()
        runs = live.wait_runs_final(run_ids, timeout=180)
    finally:
        live.clear_faults()
    print(f"\nslack outage: run ended {runs[run_ids[0]].state.name} "  # type: ignore[union-attr]
          f"{time.monotonic() - started:.0f} s after it started")
    created = live.store_requests_of(run_ids)
    assert len(created) == 1
    request = live.store.get(created[0].id)
    events = live.audit(request.id)
    run_states = {run.state.type for run in runs.values() if run.state}
    assert request.status in (Status.CANCELLED, Status.TIMED_OUT), (request.status, events)
    assert request.decision is not None and not request.decision.approved, events
    if request.status is Status.CANCELLED:
        assert run_states == {StateType.FAILED}, (run_states, events)
    else:
        # The deadline came first: a retry of the post finds the request timed out (rejected)
        # and the flow goes on with that decision, or the retries ran out first and it failed.
        assert run_states <= {StateType.FAILED, StateType.COMPLETED}, (run_states, events)
    closing = [e for e in events if e.event in {s.value for s in Status if s.closed}]
    assert len(closing) == 1 and not any(e.event == "posted" for e in events), events
    if request.status is Status.CANCELLED:
        assert "could not be posted" in (closing[0].reason or ""), events


def test_prefect_restart_then_an_operator_cancels_a_waiting_run(live: Stack) -> None:
    """The Prefect server restarts (same port, same PostgreSQL) under a waiting gate, then an
    operator cancels the run as the UI does: the run ends cancelled (or failed saying so),
    never completed; its request is cancelled; a later click changes nothing."""
    run_ids = live.start_runs(1, "prefect restart")
    requests = live.requests_of(run_ids)
    request = requests[run_ids[0]]
    down = live.restart_prefect()
    live.cancel_run(run_ids[0])
    cancelled_at = time.monotonic()
    wait_for("the request to close",
             lambda: live.store.get(request.id).status.closed, timeout=120, every=0.1)
    closed_in = time.monotonic() - cancelled_at
    runs = live.wait_runs_final(run_ids)
    ended_in = time.monotonic() - cancelled_at
    assert live.store.get(request.id).status is Status.CANCELLED
    state = runs[run_ids[0]].state
    assert state is not None
    print(f"\nprefect restart ({down:.1f} s down), then cancel: request cancelled {closed_in:.2f} s "
          f"and run {state.name} {ended_in:.1f} s after the cancel "
          f"({live.audit(request.id)[-1].reason}; run: {state.message})")
    assert state.type is StateType.CANCELLED or (
        state.type is StateType.FAILED and "cancel" in (state.message or "").lower()), state

    assert live.click(request, live.bots[0]) == 200  # answered "already closed"
    time.sleep(3)
    assert live.store.get(request.id).status is Status.CANCELLED
    after = live.read_runs(run_ids)[run_ids[0]].state
    # Never Completed: the runner may still turn the gate's Failed into the Cancelled the
    # operator asked for, never into anything that ran the gated operation.
    assert after is not None and after.type in (StateType.CANCELLED, StateType.FAILED), after
    events = live.audit(request.id)
    assert not [e for e in events if e.event == "vote"], events
    closing = [e for e in events if e.event in {s.value for s in Status if s.closed}]
    assert len(closing) == 1, events
