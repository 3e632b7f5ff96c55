"""Thirty-two users click on one request at the same instant: one decision, counted exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from slack_approvals.state import ApprovalStore, DecideStatus, Outcome, Status
from tests.conftest import Backend

from .support import spec

APPROVERS = ["U01ANA", "U02BEN", "U03CAT", "U04DAN", "U05EVE"]
REQUESTER = "U00REQ"
OUTSIDERS = ["U10OUT", "U11OUT", "U12OUT"]
THREADS = 32


def clicks(round_no: int) -> list[tuple[str, str]]:
    """32 clicks: every approver twice (some reject), the requester, outsiders, one group member."""
    rejecter = APPROVERS[round_no % len(APPROVERS)] if round_no % 2 else None
    plan: list[tuple[str, str]] = []
    for user in APPROVERS:
        vote = "reject" if user == rejecter else "approve"
        plan += [(user, vote), (user, "approve"), (user, vote)]
    plan += [(REQUESTER, "approve"), (REQUESTER, "approve")]
    plan += [(user, "approve") for user in OUTSIDERS for _ in range(3)]
    plan += [("U20GRP", "approve")]
    plan += [(OUTSIDERS[0], "reject")] * (THREADS - len(plan))
    assert len(plan) == THREADS
    return plan


@pytest.mark.parametrize("round_no", range(4))
def test_simultaneous_clicks_settle_once(backend: Backend, round_no: int) -> None:
    setup = ApprovalStore(backend.sync_client())
    request = setup.create(spec(requester=REQUESTER, approvers=APPROVERS, quorum=3,
                                approver_groups=["S01OPS"]))
    plan = clicks(round_no)
    clients = [backend.sync_client() for _ in plan]
    for client in clients:
        client.ping()  # connect before the barrier, so the clicks really coincide
    barrier = threading.Barrier(len(plan))
    results: list[tuple[str, str, DecideStatus] | BaseException] = []
    lock = threading.Lock()

    def click(index: int) -> None:
        user, vote = plan[index]
        store = ApprovalStore(clients[index])
        groups = ["S01OPS"] if user == "U20GRP" else []
        try:
            barrier.wait(10)
            status = store.decide(request.id, user, vote, groups=groups).status
            outcome: tuple[str, str, DecideStatus] | BaseException = (user, vote, status)
        except BaseException as e:
            outcome = e
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=click, args=(i,)) for i in range(len(plan))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for client in clients:
        client.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    statuses = [r for r in results if not isinstance(r, BaseException)]
    assert len(statuses) == THREADS

    final = setup.get(request.id)
    accepted = [(user, vote, status) for user, vote, status in statuses if status.accepted]
    closing = [s for s in accepted if s[2] in (DecideStatus.APPROVED, DecideStatus.REJECTED)]
    assert len(closing) == 1
    assert final.decision is not None and final.status.closed
    closer_user, closer_vote, closer_status = closing[0]
    assert final.decision.decided_by == closer_user
    assert final.status.value == closer_status.value

    # Every accepted click is a recorded vote, every recorded vote an accepted click.
    assert sorted((v.user, v.vote.value) for v in final.votes) == \
        sorted((user, vote) for user, vote, _ in accepted)
    assert max(Counter(v.user for v in final.votes).values()) == 1
    approvals = [v for v in final.votes if v.vote is Outcome.APPROVE]
    if final.status is Status.APPROVED:
        assert len(approvals) == 3 and closer_vote == "approve"
    else:
        assert final.status is Status.REJECTED and closer_vote == "reject"
        assert len(approvals) < 3

    # Outsiders are refused as not eligible, or as too late once the request closed.
    ineligible = {s[2] for s in statuses if s[0] not in APPROVERS and s[0] != "U20GRP"}
    assert ineligible <= {DecideStatus.NOT_ELIGIBLE, DecideStatus.CLOSED}
    eligible = {s[2] for s in statuses if s[0] in APPROVERS or s[0] == "U20GRP"}
    assert eligible <= {DecideStatus.RECORDED, DecideStatus.APPROVED, DecideStatus.REJECTED,
                        DecideStatus.CLOSED, DecideStatus.DUPLICATE_VOTE}
    events = [e.event for e in setup.audit(request.id)]
    assert events.count("approved") + events.count("rejected") == 1
    assert events[-1] == final.status.value
    assert events.count("vote") == len(accepted)
    assert setup.wait(request.id, 1) == final.decision
    setup.client.close()
