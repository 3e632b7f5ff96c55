"""Approval links in the store: one vote per link, through decide's own rules, on fakeredis and
a real Redis; the mail state that lets any number of bots send each mail once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from slack_approvals.bot.links import new_token, token_hash
from slack_approvals.state.models import DecideStatus, RequestSpec, Status
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
