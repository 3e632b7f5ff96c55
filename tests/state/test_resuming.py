"""Resuming suspended flow runs: the suspend script against a decision, the `resume` entry
the decision makes due, and what each answer of the orchestrator does to it (resumed,
raced, unreachable, gone), on fakeredis and a real server. The orchestrator is the
RunResumer port, scripted here; tests/integration/test_suspend.py drives Prefect itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from slack_approvals.state import ApprovalRequest, ApprovalStore, Status
from slack_approvals.state.closing import Closer, fire_resume, resume_due
from slack_approvals.state.keys import RESUME
from slack_approvals.state.resuming import (
    MISSING,
    MISSING_FOR,
    RACE_RETRY,
    RACE_WINDOW,
    UNREACHABLE_RETRY,
    WATCH_EVERY,
    ResumeOutcome,
)
from tests.state.support import FRANK, MAYA, spec

RUN = "0b7e5a52-64b6-4bb4-9c52-6f1c1f0f5e1d"
SERVER = "http://prefect.test:4200/api"


class Board:
    def post(self, request: ApprovalRequest) -> ApprovalRequest:
        return request

    def refresh(self, request: ApprovalRequest) -> ApprovalRequest:
        return request


class ScriptedOrchestrator:
    """Answers resume() from a list (an exception is raised), ended() from a fixed map (or
    raises `unreachable`); counts the calls."""

    def __init__(self, *answers: ResumeOutcome | Exception, ended: str | None = None,
                 server: str = SERVER, unreachable: Exception | None = None) -> None:
        self.answers = list(answers)
        self.resumed: list[str] = []
        self.ended_state = ended
        self.server = server
        self.unreachable = unreachable
        self.reads: list[list[str]] = []

    def resume(self, flow_run_id: str) -> ResumeOutcome:
        self.resumed.append(flow_run_id)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def ended(self, flow_run_ids: Sequence[str]) -> dict[str, str]:
        self.reads.append(list(flow_run_ids))
        if self.unreachable is not None:
            raise self.unreachable
        if self.ended_state is None:
            return {}
        return dict.fromkeys(flow_run_ids, self.ended_state)


def entry(store: ApprovalStore, request_id: str) -> datetime | None:
    score = store.client.zscore(store.plans.keys.schedule(RESUME), request_id)
    return None if score is None else datetime.fromtimestamp(float(score) / 1000, UTC)


def suspended(store: ApprovalStore, run: str = RUN, server: str = SERVER) -> ApprovalRequest:
    request = store.create(spec(quorum=1))
    assert store.suspend(request.id, run, datetime.now(UTC) + WATCH_EVERY, server) is not None
    return request


def resume_of(store: ApprovalStore, request_id: str) -> tuple[bool, str | None, datetime | None]:
    found = store.resume_state(request_id)
    assert found is not None
    return found.pending, found.run, found.due


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
    assert resume_of(store, request.id) == (False, RUN, None)
    assert entry(store, request.id) is None


def test_a_vote_that_does_not_decide_owes_no_resume(store: ApprovalStore) -> None:
    request = store.create(spec(quorum=2))
    watch_at = datetime.now(UTC) + WATCH_EVERY
    store.suspend(request.id, RUN, watch_at)
    store.decide(request.id, MAYA, "approve")
    pending, run, due = resume_of(store, request.id)
    assert (pending, run, due) == (True, RUN, None)
    assert entry(store, request.id) == pytest.approx(watch_at, abs=timedelta(milliseconds=2))
    store.decide(request.id, FRANK, "approve")
    assert resume_of(store, request.id)[2] is not None


@pytest.mark.parametrize("close", ["cancel", "resolve"])
def test_closing_without_a_vote_owes_a_resume_too(store: ApprovalStore, close: str) -> None:
    request = suspended(store)
    if close == "cancel":
        store.cancel(request.id, None, "stop", force=True)
    else:
        store.resolve(request.id, approved=True)
    assert resume_of(store, request.id)[2] is not None
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


# -- a slow or absent orchestrator costs one call per pass, not one per entry -------------------

def test_a_pass_reads_every_watched_run_in_one_call(store: ApprovalStore) -> None:
    other = "6d0a3f7c-3a43-4c1e-9f43-1f1a3d1c2b77"
    first, second, third = suspended(store), suspended(store), suspended(store, run=other)
    for request in (first, second, third):  # their watches are due now
        store.resume_later(request.id, datetime.now(UTC) - timedelta(seconds=1))
    orchestrator = ScriptedOrchestrator()
    closer = Closer(store, Board(), resumer=orchestrator)
    assert resume_due(closer) == {r.id: "watched" for r in (first, second, third)}
    assert orchestrator.reads == [sorted({RUN, other})]  # one read, each run once


def test_after_the_first_failure_a_pass_asks_the_orchestrator_nothing_more(
        store: ApprovalStore) -> None:
    decided = [suspended(store) for _ in range(3)]
    for request in decided:
        store.decide(request.id, MAYA, "approve")
    orchestrator = ScriptedOrchestrator(TimeoutError("slow"), ResumeOutcome.RESUMED,
                                        ResumeOutcome.RESUMED)
    closer = Closer(store, Board(), resumer=orchestrator)
    done = resume_due(closer)
    assert sorted(done.values()) == ["retry"] * 3
    assert orchestrator.resumed == [RUN]  # one timeout, not three
    for request in decided:  # all kept, tried again shortly
        assert entry(store, request.id) is not None
        assert resume_of(store, request.id)[2] is not None


def test_an_unreachable_orchestrator_on_the_watch_read_leaves_every_watch_for_later(
        store: ApprovalStore) -> None:
    watched, decided = suspended(store), suspended(store)
    store.resume_later(watched.id, datetime.now(UTC) - timedelta(seconds=1))
    store.decide(decided.id, MAYA, "approve")
    orchestrator = ScriptedOrchestrator(ResumeOutcome.RESUMED,
                                        unreachable=ConnectionError("refused"))
    closer = Closer(store, Board(), resumer=orchestrator)
    assert resume_due(closer) == {watched.id: "watched", decided.id: "retry"}
    assert orchestrator.resumed == []  # known unreachable: not asked again in this pass
    assert store.get(watched.id).status is Status.PENDING


def test_a_pass_out_of_time_puts_the_rest_back_unasked(store: ApprovalStore) -> None:
    decided = [suspended(store) for _ in range(2)]
    for request in decided:
        store.decide(request.id, MAYA, "approve")
    orchestrator = ScriptedOrchestrator()
    closer = Closer(store, Board(), resumer=orchestrator)
    assert resume_due(closer, budget=timedelta(0)) == {r.id: "later" for r in decided}
    assert orchestrator.resumed == []
    assert [store.client.zscore(store.plans.keys.schedule(RESUME), r.id) is not None
            for r in decided] == [True, True]
    # Due now, not at the end of a lease: the next pass takes them first.
    assert store.claim(RESUME, 10) != []


# -- "no such run" is not "gone" until the run's own server has said so for long ---------------

def test_a_run_its_server_does_not_know_is_watched_until_missing_long_enough(
        store: ApprovalStore) -> None:
    request = suspended(store)
    closer = Closer(store, Board(), resumer=ScriptedOrchestrator(ended=MISSING))
    now = datetime.now(UTC)
    assert fire_resume(closer, request.id, now) == "watched"
    assert fire_resume(closer, request.id, now + MISSING_FOR / 2) == "watched"
    assert store.get(request.id).status is Status.PENDING
    assert fire_resume(closer, request.id, now + MISSING_FOR) == "closed"
    assert store.get(request.id).status is Status.CANCELLED


def test_a_run_found_again_starts_the_missing_count_afresh(store: ApprovalStore) -> None:
    request = suspended(store)
    orchestrator = ScriptedOrchestrator(ended=MISSING)
    closer = Closer(store, Board(), resumer=orchestrator)
    now = datetime.now(UTC)
    assert fire_resume(closer, request.id, now) == "watched"
    orchestrator.ended_state = None  # the server answers for it again
    assert fire_resume(closer, request.id, now + timedelta(minutes=1)) == "watched"
    orchestrator.ended_state = MISSING
    assert fire_resume(closer, request.id, now + MISSING_FOR) == "watched"
    assert store.get(request.id).status is Status.PENDING


def test_another_server_saying_no_such_run_never_closes_or_drops(store: ApprovalStore) -> None:
    request = suspended(store)
    elsewhere = ScriptedOrchestrator(ResumeOutcome.MISSING, ended=MISSING,
                                     server="http://other:4200/api")
    closer = Closer(store, Board(), resumer=elsewhere)
    much_later = datetime.now(UTC) + MISSING_FOR * 10
    assert fire_resume(closer, request.id, much_later) == "watched"
    assert store.get(request.id).status is Status.PENDING
    store.decide(request.id, MAYA, "approve")
    assert fire_resume(closer, request.id, much_later) == "retry"
    assert resume_of(store, request.id)[2] is not None  # still owed, for the right server


def test_a_decided_run_its_server_does_not_know_is_dropped_only_when_missing_long_enough(
        store: ApprovalStore) -> None:
    request = suspended(store)
    orchestrator = ScriptedOrchestrator(ResumeOutcome.MISSING, ResumeOutcome.MISSING)
    closer = Closer(store, Board(), resumer=orchestrator)
    store.decide(request.id, MAYA, "approve")
    now = datetime.now(UTC)
    assert fire_resume(closer, request.id, now) == "retry"
    assert fire_resume(closer, request.id, now + MISSING_FOR) == "gone"
    assert entry(store, request.id) is None


def test_the_resume_state_carries_redis_time(store: ApprovalStore) -> None:
    request = suspended(store)
    found = store.resume_state(request.id)
    assert found is not None and found.server == SERVER
    seconds, micros = store.client.time()
    assert found.now == pytest.approx(datetime.fromtimestamp(seconds + micros / 1e6, UTC),
                                      abs=timedelta(seconds=1))


# -- the resume goes out before the message edit; a re-entered gate clears what is owed ----------

def test_the_resume_fires_before_the_message_is_edited(store: ApprovalStore) -> None:
    request = suspended(store)
    orchestrator = ScriptedOrchestrator(ResumeOutcome.RESUMED)
    resumed_at_edit: list[list[str]] = []

    class SlowBoard(Board):
        def refresh(self, request: ApprovalRequest) -> ApprovalRequest:
            resumed_at_edit.append(list(orchestrator.resumed))
            return request

    closer = Closer(store, SlowBoard(), resumer=orchestrator)
    result = store.decide(request.id, MAYA, "approve")
    assert result.request is not None
    closer.announce(result.request)
    assert resumed_at_edit == [[RUN]]


def test_a_run_reading_its_request_again_is_owed_no_resume(store: ApprovalStore) -> None:
    request = suspended(store)
    store.unwatch(request.id)  # the re-entered gate
    assert entry(store, request.id) is None
    result = store.decide(request.id, MAYA, "approve")  # lands while the run runs
    assert result.request is not None and result.request.suspended_run is None
    assert resume_of(store, request.id) == (False, None, None)
    assert entry(store, request.id) is None  # nothing left to wake its next suspend
