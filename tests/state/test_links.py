"""Approval links in the store: one vote per link, through decide's own rules, on fakeredis and
a real Redis; the mail state that lets any number of bots send each mail once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from slack_approvals.bot.links import new_token, token_hash
from slack_approvals.state.models import DecideStatus, Outcome, RequestSpec, Status
from slack_approvals.state.store import ApprovalStore

ANN = "ann@example.com"
MAYA, REQUESTER = "U01MAYA", "U06REQ"


def make(store: ApprovalStore, **fields: object) -> str:
    spec = {"title": "Pay invoice 42", "channel": "#approvals", "email_approvers": [ANN],
            "requester": REQUESTER, **fields}
    return store.create(RequestSpec.model_validate(spec)).id


def mailed(store: ApprovalStore, request_id: str, address: str = ANN,
           slack_user: str | None = None) -> tuple[str, str]:
    """What the mailer does before sending: the two links, by their tokens' hashes."""
    approve, reject = new_token(), new_token()
    status, _ = store.mail_begin(request_id, address, slack_user,
                                 (token_hash(approve), token_hash(reject)))
    assert status == "go"
    store.mail_end(request_id, address)
    return approve, reject


def test_a_link_votes_once_as_its_address(store: ApprovalStore) -> None:
    request_id = make(store)
    approve, _ = mailed(store, request_id)

    status, result = store.redeem(request_id, token_hash(approve))
    assert status == "ok" and result is not None
    assert result.status is DecideStatus.APPROVED
    assert result.request is not None and result.request.decision is not None
    assert result.request.decision.decided_by == f"mailto:{ANN}"

    assert store.redeem(request_id, token_hash(approve)) == ("link_used", None)
    vote = [e for e in store.audit(request_id) if e.event == "vote"]
    assert len(vote) == 1 and vote[0].model_extra == {"via": "link"}


def test_a_wrong_token_is_unknown_and_writes_nothing(store: ApprovalStore) -> None:
    request_id = make(store)
    mailed(store, request_id)
    assert store.redeem(request_id, token_hash(new_token())) == ("link_unknown", None)
    assert store.get(request_id).votes == []


def test_reject_link_closes_with_the_reason(store: ApprovalStore) -> None:
    request_id = make(store)
    _, reject = mailed(store, request_id)
    status, result = store.redeem(request_id, token_hash(reject), "budget is frozen")
    assert status == "ok" and result is not None and result.request is not None
    assert result.request.decision is not None
    assert (result.request.status, result.request.decision.reason) == (Status.REJECTED,
                                                                      "budget is frozen")


def test_slack_and_email_votes_make_one_quorum(store: ApprovalStore) -> None:
    request_id = make(store, approvers=[MAYA], quorum=2)
    approve, _ = mailed(store, request_id)
    assert store.decide(request_id, MAYA, "approve").status is DecideStatus.RECORDED
    _, result = store.redeem(request_id, token_hash(approve))
    assert result is not None and result.status is DecideStatus.APPROVED


def test_an_address_of_a_slack_user_is_that_one_voter(store: ApprovalStore) -> None:
    request_id = make(store, approvers=[MAYA, "U02FRANK"], quorum=2)
    approve, _ = mailed(store, request_id, slack_user=MAYA)
    assert store.get(request_id).aliases == {f"mailto:{ANN}": MAYA}
    assert store.decide(request_id, MAYA, "approve").status is DecideStatus.RECORDED

    _, result = store.redeem(request_id, token_hash(approve))
    assert result is not None and result.status is DecideStatus.DUPLICATE_VOTE
    # A refused vote leaves the link to say why again; the request still waits for Frank.
    assert store.link(request_id, token_hash(approve)).get("used_ms") is None  # type: ignore[union-attr]
    assert store.get(request_id).status is Status.PENDING


def test_the_requesters_own_address_may_not_approve(store: ApprovalStore) -> None:
    request_id = make(store, approvers=[MAYA])
    approve, reject = mailed(store, request_id, slack_user=REQUESTER)
    _, result = store.redeem(request_id, token_hash(approve))
    assert result is not None and result.status is DecideStatus.SELF_APPROVAL
    # Rejecting one's own request stays allowed, as in Slack.
    _, result = store.redeem(request_id, token_hash(reject), "withdrawn")
    assert result is not None and result.status is DecideStatus.REJECTED


def test_closed_and_expired_requests_refuse_the_link(store: ApprovalStore) -> None:
    request_id = make(store)
    approve, _ = mailed(store, request_id)
    store.cancel(request_id, None, "not needed", force=True)
    _, result = store.redeem(request_id, token_hash(approve))
    assert result is not None and result.status is DecideStatus.CLOSED

    short = make(store, timeout=timedelta(milliseconds=300))
    approve, _ = mailed(store, short)
    time.sleep(0.4)  # past the deadline by Redis's clock
    _, result = store.redeem(short, token_hash(approve))
    assert result is not None and result.status is DecideStatus.EXPIRED


def test_each_mail_is_taken_by_one_sender(store: ApprovalStore) -> None:
    request_id = make(store)
    assert store.claim("mail") == [request_id]
    hashes = (token_hash(new_token()), token_hash(new_token()))
    assert store.mail_begin(request_id, ANN, None, hashes)[0] == "go"
    # A second bot (or the same after a crash, within the lease) does not send it again.
    assert store.mail_begin(request_id, ANN, None, hashes)[0] == "busy"
    store.mail_end(request_id, ANN)
    assert store.mail_begin(request_id, ANN, None, hashes, lease=timedelta(0))[0] == "done"
    assert store.mail_begin(request_id, "bob@example.com", None, hashes)[0] == "not_approver"
    events = [e.event for e in store.audit(request_id)]
    assert events == ["created", "mailed"]


def test_a_failed_send_is_retried_unless_final(store: ApprovalStore) -> None:
    request_id = make(store)
    hashes = (token_hash(new_token()), token_hash(new_token()))
    assert store.mail_begin(request_id, ANN, None, hashes)[0] == "go"
    store.mail_end(request_id, ANN, "SMTP server answered 421")
    assert store.mail_begin(request_id, ANN, None, hashes)[0] == "go"
    store.mail_end(request_id, ANN, "recipient refused (550)", final=True)
    assert store.mail_begin(request_id, ANN, None, hashes)[0] == "done"
    failed = [e for e in store.audit(request_id) if e.event == "mail_failed"]
    assert [e.model_extra["final"] for e in failed] == [False, True]  # type: ignore[index]


def test_email_approvers_count_toward_a_reachable_quorum() -> None:
    spec = RequestSpec(title="t", channel="#a", approvers=[MAYA], email_approvers=[ANN], quorum=2)
    assert spec.email_voters == [f"mailto:{ANN}"] and not spec.open_to_anyone
    with pytest.raises(ValueError, match="only 1 approver named"):
        RequestSpec(title="t", channel="#a", email_approvers=[ANN], quorum=2)
    with pytest.raises(ValueError, match="'ann@example' is not a mail address"):
        RequestSpec(title="t", channel="#a", email_approvers=["ann@example"])


def test_only_the_lease_owner_frees_it_and_a_late_failure_is_lost(store: ApprovalStore) -> None:
    request_id = make(store)
    hashes = (token_hash(new_token()), token_hash(new_token()))
    assert store.mail_begin(request_id, ANN, None, hashes, timedelta(milliseconds=50), "aaa")[0] == "go"
    time.sleep(0.1)  # the first sender's lease runs out (by Redis's clock); a second takes it
    assert store.mail_begin(request_id, ANN, None, hashes, timedelta(minutes=5), "bbb")[0] == "go"
    # The first sender's late failure neither frees the second's lease nor counts.
    assert store.mail_end(request_id, ANN, "SMTP server unreachable", owner="aaa") is None
    assert store.mail_begin(request_id, ANN, None, hashes, timedelta(minutes=5), "ccc")[0] == "busy"
    assert not [e for e in store.audit(request_id) if e.event == "mail_failed"]
    assert store.mail_end(request_id, ANN, owner="bbb") == 0
    assert store.get(request_id).mailed == frozenset({ANN})


def test_no_mail_is_begun_past_the_deadline(store: ApprovalStore) -> None:
    request_id = make(store, timeout=timedelta(milliseconds=200))
    time.sleep(0.3)  # past the deadline by Redis's clock; no sweeper has closed it yet
    hashes = (token_hash(new_token()), token_hash(new_token()))
    assert store.mail_begin(request_id, ANN, None, hashes)[0] == "closed"
    assert store.link(request_id, hashes[0]) is None


def test_failures_in_a_row_are_counted_and_audited_once_per_reason(store: ApprovalStore) -> None:
    request_id = make(store)
    for _ in range(4):
        assert store.mail_end(request_id, ANN, "SMTP server answered 421") is not None
    assert store.mail_end(request_id, ANN, "SMTP server unreachable (TimeoutError)") == 5
    failed = [e for e in store.audit(request_id) if e.event == "mail_failed"]
    assert [(f.reason, f.model_extra["failures"]) for f in failed] == [  # type: ignore[index]
        ("SMTP server answered 421", 1), ("SMTP server unreachable (TimeoutError)", 5)]
    # A send that gets through starts the count again.
    hashes = (token_hash(new_token()), token_hash(new_token()))
    assert store.mail_begin(request_id, ANN, None, hashes, owner="x")[0] == "go"
    assert store.mail_end(request_id, ANN, owner="x") == 0


def test_an_aliased_slack_user_sees_the_request_as_theirs(store: ApprovalStore) -> None:
    # Frank is named only by his address; once it is matched to him in Slack, his pending list
    # and the pre-checks of a click count him in, as the vote script does.
    request_id = make(store, approvers=[MAYA])
    assert [r.id for r in store.pending("U02FRANK", [], 10)] == []
    mailed(store, request_id, slack_user="U02FRANK")
    (request,) = store.pending("U02FRANK", [], 10)
    assert request.id == request_id
    assert request.refusal_for("U02FRANK", Outcome.REJECT) is None
    assert request.refusal_for("U03OTHER", Outcome.REJECT) is DecideStatus.NOT_ELIGIBLE
