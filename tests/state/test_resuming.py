"""Resuming suspended flow runs: the suspend script against a decision, the `resume` entry
the decision makes due, and what each answer of the orchestrator does to it (resumed,
raced, unreachable, gone), on fakeredis and a real server. The orchestrator is the
RunResumer port, scripted here; tests/integration/test_suspend.py drives Prefect itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from slack_approvals.state import ApprovalRequest, ApprovalStore, Status
from slack_approvals.state.closing import Closer
from slack_approvals.state.keys import RESUME
from slack_approvals.state.resuming import (
    RACE_RETRY,
    RACE_WINDOW,
    UNREACHABLE_RETRY,
    WATCH_EVERY,
    ResumeOutcome,
    fire_resume,
    resume_due,
)
from tests.state.support import FRANK, MAYA, spec

RUN = "0b7e5a52-64b6-4bb4-9c52-6f1c1f0f5e1d"


class Board:
    def post(self, request: ApprovalRequest) -> ApprovalRequest:
        return request

    def refresh(self, request: ApprovalRequest) -> ApprovalRequest:
        return request


class ScriptedOrchestrator:
    """Answers resume() from a list (an exception is raised), ended() with a fixed answer."""

    def __init__(self, *answers: ResumeOutcome | Exception, ended: str | None = None) -> None:
        self.answers = list(answers)
        self.resumed: list[str] = []
        self.ended_state = ended

    def resume(self, flow_run_id: str) -> ResumeOutcome:
        self.resumed.append(flow_run_id)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def ended(self, flow_run_id: str) -> str | None:
        return self.ended_state


def entry(store: ApprovalStore, request_id: str) -> datetime | None:
    score = store.client.zscore(store.plans.keys.schedule(RESUME), request_id)
    return None if score is None else datetime.fromtimestamp(float(score) / 1000, UTC)


def suspended(store: ApprovalStore) -> ApprovalRequest:
    request = store.create(spec(quorum=1))
    assert store.suspend(request.id, RUN, datetime.now(UTC) + WATCH_EVERY) is not None
    return request


def test_suspend_gives_each_round_its_own_number_and_refuses_a_decided_request(
        store: ApprovalStore) -> None:
    request = store.create(spec(quorum=1))
    watch_at = datetime.now(UTC) + WATCH_EVERY
    first = store.suspend(request.id, RUN, watch_at)
    second = store.suspend(request.id, RUN, watch_at)
    assert first is not None and second is not None
    assert (first[0], second[0]) == (1, 2)
    assert first[1] == request.deadline
    assert store.get(request.id).suspended_run == RUN
    assert entry(store, request.id) == pytest.approx(watch_at, abs=timedelta(milliseconds=2))
    store.decide(request.id, MAYA, "approve")
    # Decided first: the run must not suspend; it reads the decision instead.
    assert store.suspend(request.id, RUN, watch_at) is None


def test_a_vote_that_decides_makes_the_resume_due_now_and_the_recorder_fires_it(
        store: ApprovalStore) -> None:
    request = suspended(store)
    orchestrator = ScriptedOrchestrator(ResumeOutcome.RESUMED)
    closer = Closer(store, Board(), resumer=orchestrator)
    result = store.decide(request.id, MAYA, "approve")
    assert result.request is not None and result.request.decision is not None
    due = entry(store, request.id)
    assert due is not None and due == pytest.approx(result.request.decision.decided_at,
                                                    abs=timedelta(milliseconds=2))
    closer.announce(result.request)  # what the bot does after a click
    assert orchestrator.resumed == [RUN]
    assert store.resume_state(request.id) == (False, RUN, None)
    assert entry(store, request.id) is None


def test_a_vote_that_does_not_decide_owes_no_resume(store: ApprovalStore) -> None:
    request = store.create(spec(quorum=2))
    watch_at = datetime.now(UTC) + WATCH_EVERY
    store.suspend(request.id, RUN, watch_at)
    store.decide(request.id, MAYA, "approve")
    pending, run, due = store.resume_state(request.id) or (None, None, None)
    assert (pending, run, due) == (True, RUN, None)
    assert entry(store, request.id) == pytest.approx(watch_at, abs=timedelta(milliseconds=2))
    store.decide(request.id, FRANK, "approve")
    assert store.resume_state(request.id)[2] is not None  # type: ignore[index]


@pytest.mark.parametrize("close", ["cancel", "resolve"])
def test_closing_without_a_vote_owes_a_resume_too(store: ApprovalStore, close: str) -> None:
    request = suspended(store)
    if close == "cancel":
        store.cancel(request.id, None, "stop", force=True)
    else:
        store.resolve(request.id, approved=True)
    assert store.resume_state(request.id)[2] is not None  # type: ignore[index]
    assert entry(store, request.id) is not None


def test_a_run_still_running_raced_its_suspend_and_is_tried_again(store: ApprovalStore) -> None:
    request = suspended(store)
    orchestrator = ScriptedOrchestrator(ResumeOutcome.NOT_SUSPENDED, ResumeOutcome.RESUMED)
    closer = Closer(store, Board(), resumer=orchestrator)
    store.decide(request.id, MAYA, "approve")
    now = datetime.now(UTC)
    assert fire_resume(closer, request.id, now) == "retry"
    assert entry(store, request.id) == pytest.approx(now + RACE_RETRY, abs=timedelta(milliseconds=2))
    assert fire_resume(closer, request.id) == "resumed"
    assert orchestrator.resumed == [RUN, RUN]
    assert entry(store, request.id) is None


def test_a_run_running_long_after_the_decision_is_dropped(store: ApprovalStore) -> None:
    request = suspended(store)
    closer = Closer(store, Board(), resumer=ScriptedOrchestrator(ResumeOutcome.NOT_SUSPENDED))
    store.decide(request.id, MAYA, "approve")
    later = datetime.now(UTC) + RACE_WINDOW + timedelta(seconds=1)
    assert fire_resume(closer, request.id, later) == "dropped"
    assert entry(store, request.id) is None


def test_an_unreachable_orchestrator_keeps_the_resume_until_it_answers(store: ApprovalStore) -> None:
    request = suspended(store)
    orchestrator = ScriptedOrchestrator(ConnectionError("refused"), ConnectionError("refused"),
                                        ResumeOutcome.RESUMED)
    closer = Closer(store, Board(), resumer=orchestrator)
    result = store.decide(request.id, MAYA, "approve")
    assert result.request is not None
    closer.announce(result.request)  # the recorder's attempt fails: kept
    now = datetime.now(UTC)
    # Long past the race window too: an unreachable server is never given up on.
    much_later = now + RACE_WINDOW * 10
    assert fire_resume(closer, request.id, much_later) == "retry"
    assert entry(store, request.id) == pytest.approx(much_later + UNREACHABLE_RETRY,
                                                     abs=timedelta(milliseconds=2))
    assert fire_resume(closer, request.id) == "resumed"
    assert orchestrator.resumed == [RUN] * 3


def test_a_run_that_is_gone_is_dropped(store: ApprovalStore) -> None:
    request = suspended(store)
    closer = Closer(store, Board(), resumer=ScriptedOrchestrator(ResumeOutcome.GONE))
    store.decide(request.id, MAYA, "reject")
    assert fire_resume(closer, request.id) == "gone"
    assert entry(store, request.id) is None


def test_the_watch_closes_the_request_of_a_run_cancelled_while_suspended(
        store: ApprovalStore) -> None:
    request = suspended(store)
    orchestrator = ScriptedOrchestrator(ResumeOutcome.GONE, ended="Cancelled")
    closer = Closer(store, Board(), resumer=orchestrator)
    assert fire_resume(closer, request.id) == "closed"
    closed = store.get(request.id)
    assert closed.status is Status.CANCELLED
    assert closed.decision is not None and "cancelled" in (closed.decision.reason or "")
    assert entry(store, request.id) is None  # the close fired the resume: the run is gone


def test_the_watch_of_a_suspended_run_comes_back_later(store: ApprovalStore) -> None:
    request = suspended(store)
    closer = Closer(store, Board(), resumer=ScriptedOrchestrator())
    now = datetime.now(UTC)
    assert fire_resume(closer, request.id, now) == "watched"
    assert entry(store, request.id) == pytest.approx(now + WATCH_EVERY, abs=timedelta(milliseconds=2))
    assert store.get(request.id).status is Status.PENDING


def test_the_sweeper_claims_and_fires_each_due_resume_once(store: ApprovalStore) -> None:
    first, second = suspended(store), suspended(store)
    orchestrator = ScriptedOrchestrator(ResumeOutcome.RESUMED, ResumeOutcome.RESUMED)
    store.decide(first.id, MAYA, "approve")
    store.decide(second.id, MAYA, "approve")
    closer = Closer(store, Board(), resumer=orchestrator)
    assert resume_due(closer) == {first.id: "resumed", second.id: "resumed"}
    assert resume_due(closer) == {}
    assert orchestrator.resumed == [RUN, RUN]
