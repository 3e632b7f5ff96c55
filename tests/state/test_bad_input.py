"""Bad input is refused with an error naming the field, and nothing reaches Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from slack_approvals.state import (
    ApprovalStore,
    AsyncApprovalStore,
    CorruptRecord,
    InvalidRequest,
    KeySpace,
    RequestNotFound,
    RequestSpec,
)
from slack_approvals.state.models import MAX_FACTS, MAX_REASON, MAX_SUMMARY, MAX_TITLE
from slack_approvals.state.plans import new_request_id
from tests.conftest import Backend

from .support import CHANNEL, MAYA, REQUESTER, snapshot, spec

KEYS = KeySpace()


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"title": "Deploy api v2", "channel": CHANNEL,
                            "approvers": [MAYA, "U02FRANK"], "quorum": 2, "requester": REQUESTER}
    base.update(overrides)
    return base


# -- unknown and malformed ids ---------------------------------------------------------------


def test_unknown_id_is_not_found(store: ApprovalStore) -> None:
    unknown = new_request_id()
    with pytest.raises(RequestNotFound, match=unknown):
        store.get(unknown)
    with pytest.raises(RequestNotFound):
        store.audit(unknown)
    with pytest.raises(RequestNotFound):
        store.wait(unknown, 0.1)
    with pytest.raises(RequestNotFound):
        store.attach_message(unknown, CHANNEL, "1.2")


MALFORMED_IDS = [
    pytest.param("", id="empty"),
    pytest.param("abc", id="short"),
    pytest.param("0123456789abcdefg", id="long"),
    pytest.param("0123456789ABCDEF", id="uppercase"),
    pytest.param("0123456789abcdel", id="excluded-letter"),
    pytest.param("0123456789abc*ef", id="symbol"),
    pytest.param("{0123456789abcd}", id="hash-tag"),
    pytest.param("0123456789abcde\n", id="newline"),
    pytest.param(None, id="none"),
    pytest.param(1234567890123456, id="int"),
]


@pytest.mark.parametrize("request_id", MALFORMED_IDS)
def test_malformed_id_is_refused_everywhere(store: ApprovalStore, redis_client: redis.Redis,
                                           request_id: Any) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get(request_id),
        lambda: store.audit(request_id),
        lambda: store.decide(request_id, MAYA, "approve"),
        lambda: store.wait(request_id, 0.1),
        lambda: store.expire(request_id),
        lambda: store.cancel(request_id, REQUESTER),
        lambda: store.resolve(request_id, approved=True),
        lambda: store.attach_message(request_id, CHANNEL, "1.2"),
    ]
    for call in calls:
        with pytest.raises(InvalidRequest, match="malformed request id"):
            call()
    assert redis_client.dbsize() == 0


# -- bad arguments to the operations ---------------------------------------------------------


BAD_USERS = [pytest.param("", id="empty"), pytest.param("maya", id="name"),
             pytest.param("u01maya", id="lowercase"), pytest.param("C01CHAN", id="channel"),
             pytest.param("U1", id="short"), pytest.param(None, id="none"),
             pytest.param(42, id="int")]


@pytest.mark.parametrize("user", BAD_USERS)
def test_malformed_user_is_refused(store: ApprovalStore, redis_client: redis.Redis,
                                   user: Any) -> None:
    request = store.create(spec())
    before = snapshot(redis_client)
    with pytest.raises(InvalidRequest, match=r"^user: "):
        store.decide(request.id, user, "approve")
    if user is not None:
        with pytest.raises(InvalidRequest, match=r"^user: "):
            store.cancel(request.id, user)
        with pytest.raises(InvalidRequest, match=r"^user: "):
            store.pending(user)
        with pytest.raises(InvalidRequest, match=r"^user: "):
            store.recent(user)
    with pytest.raises(InvalidRequest, match=r"^by: "):
        store.resolve(request.id, approved=True, by="" if user is None else user)
    assert snapshot(redis_client) == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda s, i: s.decide(i, MAYA, "maybe"), "^vote: ", id="vote-word"),
        pytest.param(lambda s, i: s.decide(i, MAYA, "APPROVE"), "^vote: ", id="vote-case"),
        pytest.param(lambda s, i: s.decide(i, MAYA, None), "^vote: ", id="vote-none"),
        pytest.param(lambda s, i: s.decide(i, MAYA, "approve", "x" * (MAX_REASON + 1)),
                     "^reason: 501 characters", id="reason-long"),
        pytest.param(lambda s, i: s.decide(i, MAYA, "approve", 7), "^reason: ", id="reason-int"),
        pytest.param(lambda s, i: s.decide(i, MAYA, "approve", groups=["ops"]), "^groups: ",
                     id="group-name"),
        pytest.param(lambda s, i: s.decide(i, MAYA, "approve", groups="S01OPS"), "^groups: ",
                     id="groups-string"),
        pytest.param(lambda s, i: s.cancel(i, None), "^user: ", id="cancel-nobody"),
        pytest.param(lambda s, i: s.cancel(i, REQUESTER, "x" * 600), "^reason: ",
                     id="cancel-reason-long"),
        pytest.param(lambda s, i: s.resolve(i, True, reason="x" * 600), "^reason: ",
                     id="resolve-reason-long"),
        pytest.param(lambda s, i: s.wait(i, 0), "^timeout: ", id="wait-zero"),
        pytest.param(lambda s, i: s.wait(i, -1), "^timeout: ", id="wait-negative"),
        pytest.param(lambda s, i: s.wait(i, 3601), "^timeout: ", id="wait-hours"),
        pytest.param(lambda s, i: s.attach_message(i, "", "1.2"), "^attach_message: ",
                     id="attach-no-channel"),
        pytest.param(lambda s, i: s.attach_message(i, CHANNEL, "9" * 41), "^attach_message: ",
                     id="attach-long-ts"),
        pytest.param(lambda s, i: s.pending(groups=["S1"]), "^groups: ", id="pending-group"),
        pytest.param(lambda s, i: s.create(fields()), "^spec: ", id="create-dict"),
        pytest.param(lambda s, i: s.create(spec(), ""), "^idempotency_key: ", id="key-empty"),
        pytest.param(lambda s, i: s.create(spec(), "k" * 501), "^idempotency_key: ",
                     id="key-long"),
        pytest.param(lambda s, i: s.create(spec(timeout=None)), "^timeout: ", id="no-deadline"),
    ],
)
def test_bad_argument_is_refused_and_nothing_written(
    store: ApprovalStore, redis_client: redis.Redis,
    call: Callable[[ApprovalStore, str], object], message: str,
) -> None:
    request = store.create(spec())
    before = snapshot(redis_client)
    with pytest.raises(InvalidRequest, match=message):
        call(store, request.id)
    assert snapshot(redis_client) == before


def test_async_store_refuses_the_same_input(backend: Backend) -> None:
    async def scenario() -> None:
        store = AsyncApprovalStore(backend.async_client())
        try:
            with pytest.raises(InvalidRequest, match="malformed request id"):
                await store.get("nope")
            with pytest.raises(InvalidRequest, match=r"^vote: "):
                await store.decide(new_request_id(), MAYA, "maybe")
            with pytest.raises(RequestNotFound):
                await store.audit(new_request_id())
            assert await store.client.dbsize() == 0
        finally:
            await store.aclose()

    asyncio.run(scenario())


# -- bad specs -------------------------------------------------------------------------------


BAD_SPECS = [
    pytest.param({"quorum": 0}, "quorum", id="quorum-zero"),
    pytest.param({"quorum": 3}, "quorum: 3 approvals needed but only 2", id="quorum-above-named"),
    pytest.param({"approvers": [MAYA, MAYA], "quorum": 1}, "approvers: each user", id="dup-user"),
    pytest.param({"approver_groups": ["S01OPS", "S01OPS"]}, "approver_groups", id="dup-group"),
    pytest.param({"approvers": ["maya"]}, "approvers.0", id="bad-approver"),
    pytest.param({"requester": ""}, "requester", id="empty-requester"),
    pytest.param({"approver_groups": ["U01MAYA"]}, "approver_groups.0", id="user-as-group"),
    pytest.param({"title": ""}, "title", id="empty-title"),
    pytest.param({"title": "   "}, "title", id="blank-title"),
    pytest.param({"title": "t" * (MAX_TITLE + 1)}, "title", id="long-title"),
    pytest.param({"summary": "s" * (MAX_SUMMARY + 1)}, "summary", id="long-summary"),
    pytest.param({"facts": [{"label": "k", "value": "v"}] * (MAX_FACTS + 1)}, "facts",
                 id="too-many-facts"),
    pytest.param({"facts": [{"label": "k", "value": "v" * 1001}]}, "facts.0.value",
                 id="long-fact"),
    pytest.param({"facts": [{"label": "k"}]}, "facts.0.value", id="fact-without-value"),
    pytest.param({"channel": "not a channel!"}, "channel", id="bad-channel"),
    pytest.param({"timeout": timedelta(0)}, "timeout", id="timeout-zero"),
    pytest.param({"timeout": timedelta(days=91)}, "timeout", id="timeout-too-long"),
    pytest.param({"timeout_outcome": "maybe"}, "timeout_outcome", id="bad-outcome"),
    pytest.param({"deadline": datetime.now() + timedelta(hours=1)}, "deadline: must carry a time zone",
                 id="naive-future-deadline"),
    pytest.param({"deadline": datetime(2020, 1, 1)}, "deadline", id="naive-past-deadline"),
    pytest.param({"deadline": datetime(2020, 1, 1, tzinfo=UTC)}, "deadline: must be in the future",
                 id="aware-past-deadline"),
    pytest.param({"deadline": datetime.now(UTC) + timedelta(days=91)}, "deadline: at most",
                 id="deadline-too-far"),
    pytest.param({"unknown_field": 1}, "unknown_field", id="extra-field"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_SPECS)
def test_bad_spec_is_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RequestSpec.model_validate(fields(**overrides))
    assert field in str(caught.value)


def test_quorum_above_named_approvers_allowed_with_groups() -> None:
    assert RequestSpec.model_validate(fields(quorum=5, approver_groups=["S01OPS"])).quorum == 5


@pytest.mark.parametrize(("approvers", "quorum"), [([MAYA, REQUESTER], 2), ([REQUESTER], 1)])
def test_a_quorum_only_the_requester_could_complete_is_refused(approvers: list[str],
                                                               quorum: int) -> None:
    with pytest.raises(ValidationError) as caught:
        RequestSpec.model_validate(fields(approvers=approvers, quorum=quorum))
    message = str(caught.value)
    assert f"quorum: {quorum} approval" in message
    assert f"only {len(approvers) - 1} of the {len(approvers)} approvers may approve" in message
    assert "may not approve their own request" in message
    # Reachable once self-approval is allowed, or with one approver fewer needed.
    RequestSpec.model_validate(fields(approvers=approvers, quorum=quorum, allow_self_approval=True))
    if quorum > 1:
        RequestSpec.model_validate(fields(approvers=approvers, quorum=quorum - 1))


def test_a_stored_spec_is_read_even_if_a_newer_rule_refuses_it() -> None:
    raw = fields(approvers=[MAYA, REQUESTER], quorum=2)
    assert RequestSpec.model_validate(raw, context={"stored": True}).quorum == 2


def test_deadline_passing_before_create_is_refused_by_the_server(
    store: ApprovalStore, redis_client: redis.Redis,
) -> None:
    store.create(spec())
    before = snapshot(redis_client)
    # Validated a moment ago, past by the time the script runs: only the server clock knows.
    stale = RequestSpec.model_construct(**{**spec().__dict__,
                                           "deadline": datetime.now(UTC) - timedelta(seconds=1)})
    with pytest.raises(InvalidRequest, match=r"^deadline: already past by the server's clock"):
        store.create(stale)
    sub_millisecond = spec(timeout=timedelta(microseconds=300))
    with pytest.raises(InvalidRequest, match=r"^deadline: already past"):
        store.create(sub_millisecond)
    assert snapshot(redis_client) == before


# -- corrupt contents ------------------------------------------------------------------------


def _break_state(field: str, value: str) -> Callable[[redis.Redis, str], None]:
    def corrupt(client: redis.Redis, request_id: str) -> None:
        client.hset(KEYS.state(request_id), field, value)
    return corrupt


def _delete_state_field(field: str) -> Callable[[redis.Redis, str], None]:
    def corrupt(client: redis.Redis, request_id: str) -> None:
        client.hdel(KEYS.state(request_id), field)
    return corrupt


def _set_spec(value: str) -> Callable[[redis.Redis, str], None]:
    def corrupt(client: redis.Redis, request_id: str) -> None:
        client.set(KEYS.spec(request_id), value, keepttl=True)
    return corrupt


CORRUPTIONS = [
    pytest.param(_break_state("status", "bogus"), id="bogus-status"),
    pytest.param(_break_state("created_ms", "yesterday"), id="created-not-a-number"),
    pytest.param(_delete_state_field("deadline_ms"), id="deadline-missing"),
    pytest.param(_break_state("vote:U01MAYA", "perhaps:1"), id="bogus-vote"),
    pytest.param(_break_state("vote:U01MAYA", "approve"), id="vote-without-time"),
    pytest.param(_set_spec("{not json"), id="spec-not-json"),
    pytest.param(_set_spec(json.dumps({"title": "only a title"})), id="spec-incomplete"),
    pytest.param(_set_spec(json.dumps(fields(quorum=0))), id="spec-breaks-rules"),
]


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_corrupt_record_is_refused(store: ApprovalStore, redis_client: redis.Redis,
                                   corrupt: Callable[[redis.Redis, str], None]) -> None:
    request = store.create(spec())
    corrupt(redis_client, request.id)
    with pytest.raises(CorruptRecord, match=request.id):
        store.get(request.id)
    with pytest.raises(CorruptRecord):
        store.pending()


def test_corrupt_closed_record_is_refused(store: ApprovalStore, redis_client: redis.Redis) -> None:
    request = store.create(spec(quorum=1))
    store.decide(request.id, MAYA, "approve")
    redis_client.hdel(KEYS.state(request.id), "decided_ms")
    with pytest.raises(CorruptRecord):
        store.wait(request.id, 1)


@pytest.mark.parametrize("entry", ["not json", json.dumps({"event": "vote"}),
                                   json.dumps({"event": "vote", "at": 1, "vote": "maybe"})])
def test_corrupt_audit_entry_is_refused(store: ApprovalStore, redis_client: redis.Redis,
                                        entry: str) -> None:
    request = store.create(spec())
    redis_client.rpush(KEYS.audit(request.id), entry)
    with pytest.raises(CorruptRecord, match="bad audit entry"):
        store.audit(request.id)
