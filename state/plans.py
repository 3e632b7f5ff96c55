"""The store's operations, written once as sans-I/O plans.

A plan is a generator that yields Redis steps and receives their results; `store.py` runs the
same plan on a blocking or an asyncio client, so no rule is written twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from .errors import CorruptRecord, InvalidRequest, RequestNotFound
from .keys import RESUME, SCHEDULE_KINDS, KeySpace
from .models import (
    GROUP_ID_PATTERN,
    ID_ALPHABET,
    MAX_REASON,
    REQUEST_ID_LENGTH,
    REQUEST_ID_PATTERN,
    USER_ID_PATTERN,
    ApprovalRequest,
    AuditEvent,
    CloseResult,
    CloseStatus,
    DecideResult,
    DecideStatus,
    Decision,
    Outcome,
    RequestSpec,
    Status,
    Vote,
    email_of,
    email_voter,
    ms_to_datetime,
)
from .resuming import ResumeState

HISTORY_LENGTH = 50
# Requests read per round trip while looking for the open ones of a list.
READ_CHUNK = 100
DEFAULT_RETENTION = timedelta(days=30)
# How long a claimed scheduled action is held by its claimer before another may take it.
DEFAULT_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Owed:
    """The posts of a reminder or an escalation announcement that Slack surely did not take
    (it said so, or was never reached): the thread reply and/or the DMs of these users, sent
    again on a later sweep. `to`: an announcement's tier people, named again in its text."""

    thread: bool
    users: tuple[str, ...]
    tries: int = 1
    to: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"thread": self.thread, "users": list(self.users), "tries": self.tries,
                           "to": list(self.to)})

    @classmethod
    def from_json(cls, text: str) -> Owed:
        data = json.loads(text)
        # Lua's cjson writes an empty list as {}.
        return cls(thread=bool(data["thread"]), users=tuple(data["users"] or ()),
                   tries=int(data["tries"]), to=tuple(data.get("to") or ()))


@dataclass(frozen=True)
class Fired:
    """What `fire` did: `count` is the reminders sent or tiers reached so far (`before`: until
    this fire); `request` is the request as it is now (None when it is gone). `resend`: not a
    new reminder but the owed posts of the last one."""

    fired: bool
    count: int
    request: ApprovalRequest | None
    before: int = 0
    resend: Owed | None = None
    # Why this one could not be fired or read back (a script error, a corrupt record).
    error: str | None = None


@dataclass(frozen=True)
class Call:
    """One Redis command, by its redis-py method name."""

    command: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunScript:
    name: str
    keys: list[str]
    args: list[str | int]


@dataclass(frozen=True)
class Batch:
    """Independent commands sent in one round trip (a non-transactional pipeline)."""

    calls: list[Call]


@dataclass(frozen=True)
class Scripts:
    """Scripts of different requests, each atomic on its own: in one round trip (a
    non-transactional pipeline) on a single server; one by one on a Redis Cluster, whose
    client refuses scripts in a pipeline. The answer has one entry per script, in order: its
    reply, or the ResponseError it raised (one script's error spares the others)."""

    scripts: list[RunScript]


Step = Call | RunScript | Batch | Scripts
Plan = Generator[Step, Any, Any]


def new_request_id(idempotency_key: str | None = None) -> str:
    """A random id, or one derived from the key so a retried create lands on the same request."""
    if idempotency_key is None:
        return "".join(secrets.choice(ID_ALPHABET) for _ in range(REQUEST_ID_LENGTH))
    digest = int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest(), "big")
    chars = []
    for _ in range(REQUEST_ID_LENGTH):
        digest, index = divmod(digest, len(ID_ALPHABET))
        chars.append(ID_ALPHABET[index])
    return "".join(chars)


def check_request_id(request_id: object) -> str:
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.match(request_id):
        raise InvalidRequest(
            f"malformed request id {request_id!r}: expected {REQUEST_ID_LENGTH} characters "
            f"from {ID_ALPHABET!r}"
        )
    return request_id


def _check_user(user: object, what: str = "user") -> str:
    if not isinstance(user, str) or not re.match(USER_ID_PATTERN, user):
        raise InvalidRequest(f"{what}: {user!r} is not a Slack user id (like U012AB3CD)")
    return user


def _check_groups(groups: Iterable[str]) -> list[str]:
    checked = []
    for group in groups:
        if not isinstance(group, str) or not re.match(GROUP_ID_PATTERN, group):
            raise InvalidRequest(f"groups: {group!r} is not a Slack user group id (like S0614TZR7)")
        checked.append(group)
    return checked


def _check_policy_hash(policy_hash: object) -> str:
    if not isinstance(policy_hash, str) or not re.fullmatch(r"[0-9a-f]{8,64}", policy_hash):
        raise InvalidRequest(f"policy hash: {policy_hash!r} is not a policy's hash (hex digits)")
    return policy_hash


def _check_reason(reason: str | None) -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise InvalidRequest("reason: must be text")
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise InvalidRequest(f"reason: {len(reason)} characters, at most {MAX_REASON} allowed")
    return reason


def _fire_reply(reply: list[Any]) -> tuple[int, str, int]:
    """fire.lua's answer as (count, next due ms or '', count before)."""
    if reply[0] in ("fired", "resend"):
        return int(reply[1]), reply[2], int(reply[3])
    return 0, reply[1] if reply[0] == "not_due" else "", 0


def _to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def parse_request(request_id: str, spec_json: str | RequestSpec | None,
                  state: Mapping[str, str]) -> ApprovalRequest:
    """Rebuild a request from Redis, refusing anything the store could not have written (a
    spec already parsed from it is taken as it is)."""
    if spec_json is None or not state:
        raise RequestNotFound(request_id)
    try:
        spec = (spec_json if isinstance(spec_json, RequestSpec)
                else RequestSpec.model_validate_json(spec_json, context={"stored": True}))
        status = Status(state["status"])
        votes = sorted(
            (
                Vote(user=name[5:], vote=Outcome(value.split(":")[0]),
                     at=ms_to_datetime(int(value.split(":")[1])))
                for name, value in state.items()
                if name.startswith("vote:")
            ),
            key=lambda v: (v.at, v.user),
        )
        decision = None
        if status.closed:
            decision = Decision(
                request_id=request_id,
                status=status,
                approved=state["approved"] == "1",
                decided_by=state.get("decided_by"),
                decided_at=ms_to_datetime(int(state["decided_ms"])),
                reason=state.get("reason"),
                votes=votes,
            )
        return ApprovalRequest(
            id=request_id,
            spec=spec,
            status=status,
            created_at=ms_to_datetime(int(state["created_ms"])),
            deadline=ms_to_datetime(int(state["deadline_ms"])),
            votes=votes,
            message_channel=state.get("msg_channel"),
            message_ts=state.get("msg_ts"),
            decision=decision,
            reminders_sent=int(state.get("reminders", 0)),
            tiers_reached=int(state.get("tiers_reached", 0)),
            aliases={name[6:]: value for name, value in state.items() if name.startswith("alias:")},
            mailed=frozenset(name[5:] for name in state if name.startswith("mail:")),
            suspended_run=state.get("resume_run"),
        )
    except (KeyError, ValueError, IndexError, ValidationError) as e:
        raise CorruptRecord(f"request {request_id}: stored data is invalid ({e})") from e


class Plans:
    """Builds the plan of each store operation; holds only configuration."""

    def __init__(self, keys: KeySpace, retention: timedelta = DEFAULT_RETENTION) -> None:
        if retention <= timedelta(0):
            raise InvalidRequest("retention: must be positive")
        self.keys = keys
        self.retention_ms = int(retention.total_seconds() * 1000)

    # -- reading ---------------------------------------------------------------------------

    def _read(self, request_id: str) -> Plan:
        spec_json, state = yield Batch(
            [Call("get", (self.keys.spec(request_id),)),
             Call("hgetall", (self.keys.state(request_id),))]
        )
        return parse_request(request_id, spec_json, state)

    def get(self, request_id: str) -> Plan:
        return (yield from self._read(check_request_id(request_id)))

    def _read_many(self, request_ids: list[str]) -> Plan:
        """Requests by id, in order, skipping those that have expired from Redis."""
        if not request_ids:
            return []
        calls: list[Call] = []
        for request_id in request_ids:
            calls += [Call("get", (self.keys.spec(request_id),)),
                      Call("hgetall", (self.keys.state(request_id),))]
        raw = yield Batch(calls)
        found = []
        for i, request_id in enumerate(request_ids):
            if raw[2 * i] is not None and raw[2 * i + 1]:
                found.append(parse_request(request_id, raw[2 * i], raw[2 * i + 1]))
        return found

    def audit(self, request_id: str) -> Plan:
        check_request_id(request_id)
        exists, entries = yield Batch(
            [Call("exists", (self.keys.state(request_id),)),
             Call("lrange", (self.keys.audit(request_id), 0, -1))]
        )
        if not exists:
            raise RequestNotFound(request_id)
        events = []
        for raw in entries:
            try:
                data = json.loads(raw)
                data["at"] = ms_to_datetime(int(data["at"]))
                events.append(AuditEvent.model_validate(data))
            except (ValueError, KeyError, TypeError, ValidationError) as e:
                raise CorruptRecord(f"request {request_id}: bad audit entry {raw!r}") from e
        return events

    def indexes_of(self, spec: RequestSpec, escalated: bool = True) -> list[str]:
        """Every pending index a request with this spec is (or, escalated, may be) listed in
        while it is open."""
        keys = [self.keys.pending_index()]
        keys += [self.keys.pending_by_approver(u) for u in spec.approvers]
        keys += [self.keys.pending_by_group(g) for g in spec.approver_groups]
        for tier in spec.escalate if escalated else ():
            keys += [self.keys.pending_by_approver(u) for u in tier.users]
            keys += [self.keys.pending_by_group(g) for g in tier.groups]
        if spec.open_to_anyone:
            keys.append(self.keys.pending_open())
        return keys

    def _live(self, ids: list[str], sources: Mapping[str, Iterable[str]],
              stale: dict[str, set[str]]) -> Plan:
        """The requests among `ids` that are still pending, in order. Entries whose request
        closed or vanished are noted in `stale` (index key -> ids) for `_heal`."""
        requests = {r.id: r for r in (yield from self._read_many(ids))}
        live = []
        for request_id in ids:
            request = requests.get(request_id)
            if request is not None and request.status is Status.PENDING:
                live.append(request)
                continue
            keys = set(sources.get(request_id, ()))
            if request is not None:
                keys.update(self.indexes_of(request.spec))
            for key in keys:
                stale.setdefault(key, set()).add(request_id)
        return live

    def _heal(self, stale: dict[str, set[str]]) -> Plan:
        """The indexes are hints: drop entries whose request closed or expired from Redis."""
        if stale:
            yield Batch([Call("zrem", (key, *sorted(ids))) for key, ids in sorted(stale.items())])

    def pending(self, user: str | None, groups: Iterable[str], limit: int,
                include_open: bool = True) -> Plan:
        """Open requests, soonest deadline first; for a user, only those they may decide now.

        A user's list reads only the indexes of requests that name them or one of `groups`
        (and, with `include_open`, those open to anyone), so it is exact however many other
        requests wait."""
        member_of = frozenset(_check_groups(groups))
        limit = max(limit, 1)
        stale: dict[str, set[str]] = {}
        found: list[ApprovalRequest] = []
        if user is None:
            index = self.keys.pending_index()
            start = 0
            while len(found) < limit:
                ids = list((yield Call("zrange", (index, start, start + READ_CHUNK - 1))))
                found += yield from self._live(ids, {i: (index,) for i in ids}, stale)
                if len(ids) < READ_CHUNK:
                    break
                start += READ_CHUNK
            yield from self._heal(stale)
            return found[:limit]
        _check_user(user)
        sources_keys = [self.keys.pending_by_approver(user)]
        sources_keys += [self.keys.pending_by_group(g) for g in sorted(member_of)]
        if include_open:
            sources_keys.append(self.keys.pending_open())
        replies = yield Batch([Call("zrange", (key, 0, -1), {"withscores": True})
                               for key in sources_keys])
        deadlines: dict[str, float] = {}
        sources: dict[str, list[str]] = {}
        for key, entries in zip(sources_keys, replies, strict=True):
            for request_id, score in entries:
                deadlines[request_id] = float(score)
                sources.setdefault(request_id, []).append(key)
        ordered = sorted(deadlines, key=lambda i: (deadlines[i], i))
        for start in range(0, len(ordered), READ_CHUNK):
            chunk = ordered[start:start + READ_CHUNK]
            live = yield from self._live(chunk, sources, stale)
            found += [r for r in live if r.may_decide(user, member_of)
                      and (include_open or not r.spec.open_to_anyone)]
            if len(found) >= limit:
                break
        yield from self._heal(stale)
        return found[:limit]

    def pending_groups(self) -> Plan:
        """User groups named by requests still before their deadline: the groups whose
        membership a user's list needs to know."""
        index = self.keys.pending_groups()
        seconds, micros = yield Call("time")
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        # Scores are the latest deadline naming the group; a create only ever raises them
        # (ZADD GT), so this never drops a group that a concurrent create just named.
        _, groups = yield Batch([Call("zremrangebyscore", (index, "-inf", f"({now_ms}")),
                                 Call("zrange", (index, 0, -1))])
        groups = list(groups)
        if not groups:
            return []
        exists = yield Batch([Call("exists", (self.keys.pending_by_group(g),)) for g in groups])
        return [g for g, there in zip(groups, exists, strict=True) if there]

    def recent(self, user: str, limit: int) -> Plan:
        """Requests the user voted on, newest first."""
        _check_user(user)
        ids = yield Call("lrange", (self.keys.user_history(user), 0, limit - 1))
        return (yield from self._read_many(list(dict.fromkeys(ids))))

    # -- writing ---------------------------------------------------------------------------

    def create(self, spec: RequestSpec, idempotency_key: str | None) -> Plan:
        if not isinstance(spec, RequestSpec):
            raise InvalidRequest("spec: expected a RequestSpec")
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 500):
            raise InvalidRequest("idempotency_key: 1 to 500 characters")
        request_id = new_request_id(idempotency_key)
        timeout_ms = "" if spec.timeout is None else str(int(spec.timeout.total_seconds() * 1000))
        deadline_ms = "" if spec.deadline is None else str(_to_ms(spec.deadline))
        if spec.deadline is not None:
            # An explicit deadline wins; the default timeout is then unused.
            timeout_ms = ""
        if not timeout_ms and not deadline_ms:
            raise InvalidRequest("timeout: give a timeout or a deadline")
        args: list[str | int] = [
            spec.model_dump_json(),
            spec.requester or "",
            spec.quorum,
            "1" if spec.allow_self_approval else "0",
            spec.timeout_outcome.value,
            timeout_ms,
            deadline_ms,
            self.retention_ms,
            "1" if spec.open_to_anyone else "0",
            # Email approvers are eligible as `mailto:<address>`, beside the Slack users.
            len(spec.approvers) + len(spec.email_voters), *spec.approvers, *spec.email_voters,
            len(spec.approver_groups), *spec.approver_groups,
            "" if spec.remind_every is None else int(spec.remind_every.total_seconds() * 1000),
            spec.remind_limit,
            len(spec.escalate),
        ]
        for tier in spec.escalate:
            args += [int(tier.after.total_seconds() * 1000),
                     "" if tier.quorum is None else tier.quorum, len(tier.to), *tier.to]
        status, deadline, remind_due, esc_due = yield RunScript(
            "create", self.keys.request_keys(request_id), args)
        if status == "deadline_past":
            raise InvalidRequest("deadline: already past by the server's clock")
        request = yield from self._read(request_id)
        if request.status is Status.PENDING:
            # Each index lives as long as its longest-lived entry could (deadline + retention):
            # NX gives a new index its TTL, GT only ever extends it (Redis >= 7), so concurrent
            # creates settle on the latest expiry and an index nobody sweeps still goes away.
            # A retried create lands here again, so an index write lost with a crashed client
            # is made good by the retry.
            expire_at = int(deadline) + self.retention_ms
            # A retry after votes must not list the request again to those who voted.
            voted = {self.keys.pending_by_approver(v.user) for v in request.votes}
            calls = [Call("zadd", (index, {request_id: int(deadline)}))
                     for index in self.indexes_of(request.spec, escalated=False)
                     if index not in voted]
            if spec.approver_groups:
                calls.append(Call("zadd", (self.keys.pending_groups(),
                                           dict.fromkeys(spec.approver_groups, int(deadline))),
                                  {"gt": True}))
            for kind, due in (("remind", remind_due), ("escalate", esc_due)):
                if due:
                    # NX: a retried create must not pull back an entry a claim moved ahead.
                    calls.append(Call("zadd", (self.keys.schedule(kind), {request_id: int(due)}),
                                      {"nx": True}))
            if spec.email_approvers:
                # Due at once; NX as above. A bot's sweeper sends the mails (bot/mailer.py).
                calls.append(Call("zadd", (self.keys.schedule("mail"),
                                           {request_id: _to_ms(request.created_at)}), {"nx": True}))
            indexes = [c.args[0] for c in calls]
            for index in indexes:
                calls += [Call("pexpireat", (index, expire_at), {"nx": True}),
                          Call("pexpireat", (index, expire_at), {"gt": True})]
            yield Batch(calls)
        return request

    def decide(
        self, request_id: str, user: str, vote: Outcome | str, reason: str | None,
        groups: Iterable[str],
    ) -> Plan:
        check_request_id(request_id)
        _check_user(user)
        try:
            vote = Outcome(vote)
        except ValueError as e:
            raise InvalidRequest(f"vote: {vote!r} is neither 'approve' nor 'reject'") from e
        args: list[str | int] = [user, vote.value, _check_reason(reason), self.retention_ms,
                                 *_check_groups(groups)]
        raw_status, _ = yield RunScript("decide", self.keys.request_keys(request_id), args)
        return (yield from self._after_vote(request_id, user, DecideStatus(raw_status)))

    def redeem(self, request_id: str, token_hash: str, reason: str | None) -> Plan:
        """A vote through an approval link (the link names the voter and the vote); returns
        `(link_status, DecideResult | None)`: `"link_unknown"`, `"link_used"` (with the
        request as it is) or `"ok"` with decide's answer. Same rules, same follow-up as decide."""
        check_request_id(request_id)
        if not re.fullmatch(r"[0-9a-f]{64}", token_hash):
            raise InvalidRequest("token hash: expected 64 hex digits")
        args: list[str | int] = ["", "", _check_reason(reason), self.retention_ms]
        keys = [*self.keys.request_keys(request_id), self.keys.link(request_id, token_hash)]
        raw_status, _ = yield RunScript("redeem", keys, args)
        if raw_status in ("link_unknown", "link_used"):
            return raw_status, None
        status = DecideStatus(raw_status)
        voter = yield Call("hget", (self.keys.link(request_id, token_hash), "used_by"))
        return "ok", (yield from self._after_vote(request_id, voter or "", status))

    # -- mail to email approvers (claimed from schedule("mail") like any scheduled action) ---

    def mail_begin(self, request_id: str, address: str, slack_user: str | None,
                   token_hashes: tuple[str, str], lease: timedelta = DEFAULT_LEASE,
                   owner: str = "") -> Plan:
        """Take the send of one approver's mail for `lease` (held by `owner`), record the Slack
        user the address belongs to, and write its approve and reject links (by their tokens'
        hashes). Returns `("go", deadline)` or `(status, None)`: unknown, closed (decided or
        past its deadline), not_approver, done, busy."""
        check_request_id(request_id)
        voter = email_voter(address)
        if slack_user is not None:
            _check_user(slack_user, "slack user")
        for token_hash in token_hashes:
            if not re.fullmatch(r"[0-9a-f]{64}", token_hash):
                raise InvalidRequest("token hash: expected 64 hex digits")
        keys = [*self.keys.request_keys(request_id),
                *(self.keys.link(request_id, h) for h in token_hashes)]
        reply = yield RunScript("mail", keys, ["begin", email_of(voter) or "", self.retention_ms,
                                              owner, max(int(lease.total_seconds() * 1000), 1),
                                              slack_user or ""])
        if reply[0] != "go":
            return reply[0], None
        deadline = ms_to_datetime(int(reply[1]))
        if slack_user is not None:
            # The person behind the address sees the request in their own pending list (App
            # Home, /approvals) as if named in Slack; a closed request's entry heals away.
            yield Call("zadd", (self.keys.pending_by_approver(slack_user),
                                {request_id: int(reply[1])}))
        return "go", deadline

    def mail_end(self, request_id: str, address: str, error: str | None = None,
                 final: bool = False, owner: str = "") -> Plan:
        """The mail went out (`error` None), or failed: for good when `final`, else it is sent
        again at a later claim. Returns the failures in a row (0 once sent; None when another
        bot holds the lease now). The audit has the sending, the first failure, each new
        reason and the final one."""
        check_request_id(request_id)
        address = email_of(email_voter(address)) or ""
        args: list[str | int] = (["sent", address, self.retention_ms, owner] if error is None else
                                 ["failed", address, self.retention_ms, owner, error[:MAX_REASON],
                                  "1" if final else "0"])
        reply = yield RunScript("mail", self.keys.request_keys(request_id), args)
        if reply[0] == "lost":
            return None
        return int(reply[1]) if len(reply) > 1 else 0

    def mail_next(self, request_id: str, at: datetime | None) -> Plan:
        """Claim the request's mails again at `at` (some are left to send), or never (None)."""
        check_request_id(request_id)
        schedule = self.keys.schedule("mail")
        if at is None:
            yield Call("zrem", (schedule, request_id))
        else:
            yield Call("zadd", (schedule, {request_id: _to_ms(at)}), {"xx": True})

    def link_misses(self, client: str, add: bool) -> Plan:
        """Wrong link tokens from `client` this minute, after counting one more when `add`."""
        key = self.keys.link_misses(client[:64])
        if not add:
            count = yield Call("get", (key,))
            return int(count or 0)
        # The window starts at the first miss: a minute later the client may try again.
        count, _ = yield Batch([Call("incr", (key,)), Call("pexpire", (key, 60_000), {"nx": True})])
        return int(count)

    def link(self, request_id: str, token_hash: str) -> Plan:
        """A link's record (`voter`, `vote`, `used_ms`, `used_by`), or None when there is none."""
        check_request_id(request_id)
        record = yield Call("hgetall", (self.keys.link(request_id, token_hash),))
        return dict(record) or None

    def _after_vote(self, request_id: str, user: str, status: DecideStatus) -> Plan:
        if status is DecideStatus.UNKNOWN:
            return DecideResult(status=status, request=None)
        request = yield from self._read(request_id)
        if status.accepted:
            history = self.keys.user_history(user)
            calls = [Call("lpush", (history, request_id)),
                     Call("ltrim", (history, 0, HISTORY_LENGTH - 1)),
                     Call("pexpire", (history, self.retention_ms)),
                     # It no longer waits for this user, whatever else happens to it.
                     Call("zrem", (self.keys.pending_by_approver(user), request_id))]
            if status is not DecideStatus.RECORDED:
                calls += [Call("zrem", (index, request_id))
                          for index in self.indexes_of(request.spec) + self.schedules()]
                calls += self._resume_now(request)
            yield Batch(calls)
        elif status is DecideStatus.SETTLED:
            # Closed by a tier's lower quorum, with no vote of this user's: off every list.
            calls = [Call("zrem", (index, request_id))
                     for index in self.indexes_of(request.spec) + self.schedules()]
            yield Batch(calls + self._resume_now(request))
        return DecideResult(status=status, request=request)

    def _close(self, request_id: str, mode: str, user: str, reason: str,
               resolve_status: str = "", force: bool = False) -> Plan:
        args: list[str | int] = [mode, user, reason, self.retention_ms, resolve_status,
                                 "1" if force else "0"]
        (raw_status,) = yield RunScript("close", self.keys.request_keys(request_id), args)
        status = CloseStatus(raw_status)
        if status is CloseStatus.UNKNOWN:
            yield Call("zrem", (self.keys.pending_index(), request_id))
            return CloseResult(status=status, request=None)
        request = yield from self._read(request_id)
        if status in (CloseStatus.CLOSED_NOW, CloseStatus.ALREADY_CLOSED):
            calls = [Call("zrem", (index, request_id))
                     for index in self.indexes_of(request.spec) + self.schedules()]
            if status is CloseStatus.CLOSED_NOW:
                calls += self._resume_now(request)
            yield Batch(calls)
        return CloseResult(status=status, request=request)

    def cancel(self, request_id: str, user: str | None, reason: str | None, force: bool) -> Plan:
        check_request_id(request_id)
        if user is None and not force:
            raise InvalidRequest("user: who cancels must be named unless force=True")
        who = "" if user is None else _check_user(user)
        return (yield from self._close(request_id, "cancel", who, _check_reason(reason), force=force))

    def resolve(self, request_id: str, approved: bool, by: str | None, reason: str | None) -> Plan:
        check_request_id(request_id)
        who = "" if by is None else _check_user(by, "by")
        status = Status.APPROVED if approved else Status.REJECTED
        return (yield from self._close(request_id, "resolve", who, _check_reason(reason),
                                       resolve_status=status.value))

    def settle(self, request_id: str) -> Plan:
        """Approve a request whose escalation tier lowered the quorum to the approvals already
        counted (by the server's clock); NOT_DUE when no tier's quorum is met."""
        check_request_id(request_id)
        return (yield from self._close(request_id, "settle", "", ""))

    def settle_many(self, request_ids: list[str], errors: dict[str, str] | None = None) -> Plan:
        """`settle` for many requests: one round trip when none is settled, one more to read
        back and unlist those that are. Returns the requests closed now; a script's error
        goes in `errors` by id (when given) and spares the others."""
        if not request_ids:
            return []
        replies = yield Scripts([RunScript("close", self.keys.request_keys(check_request_id(i)),
                                           ["settle", "", "", self.retention_ms, "", "0"])
                                 for i in request_ids])
        closed = []
        for request_id, reply in zip(request_ids, replies, strict=True):
            if isinstance(reply, Exception):
                if errors is not None:
                    errors[request_id] = f"settle failed: {reply}"
            elif reply[0] == CloseStatus.CLOSED_NOW.value:
                closed.append(request_id)
        requests = yield from self._read_many(closed)
        calls: list[Call] = []
        for request in requests:
            calls += [Call("zrem", (index, request.id))
                      for index in self.indexes_of(request.spec) + self.schedules()]
            calls += self._resume_now(request)
        if calls:
            yield Batch(calls)
        return requests

    def tier_times(self, specs: Mapping[str, RequestSpec]) -> Plan:
        """When each quorum-setting escalation tier of these requests still to come comes, by
        the server's clock (one round trip): request id -> those times, in tier order."""
        ids = [i for i, spec in specs.items() if any(t.quorum is not None for t in spec.escalate)]
        if not ids:
            return {}
        (seconds, micros), *raw = yield Batch(
            [Call("time"), *(Call("hmget", (self.keys.state(check_request_id(i)),
                                            *(f"tier_at:{n}" for n, t in
                                              enumerate(specs[i].escalate, 1)
                                              if t.quorum is not None)))
                             for i in ids)])
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return {i: [ms_to_datetime(int(at)) for at in times if at is not None and int(at) > now_ms]
                for i, times in zip(ids, raw, strict=True)}

    def expire(self, request_id: str) -> Plan:
        check_request_id(request_id)
        return (yield from self._close(request_id, "expire", "", "deadline passed"))

    def expire_due(self, limit: int) -> Plan:
        """Close overdue requests with their timeout outcome; returns those closed now."""
        seconds, micros = yield Call("time")
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        due = yield Call("zrangebyscore", (self.keys.pending_index(), "-inf", now_ms),
                         {"start": 0, "num": limit})
        closed = []
        for request_id in due:
            result = yield from self._close(request_id, "expire", "", "deadline passed")
            if result.status is CloseStatus.CLOSED_NOW and result.request is not None:
                closed.append(result.request)
        return closed

    # -- scheduled actions (reminders, escalation) -------------------------------------------

    def schedules(self) -> list[str]:
        return [self.keys.schedule(kind) for kind in SCHEDULE_KINDS]

    def claim(self, kind: str, limit: int, lease: timedelta = DEFAULT_LEASE) -> Plan:
        """Up to `limit` requests whose action of `kind` is due, held for `lease` so that
        other claimers skip them; `fire` then says whether each is really due."""
        lease_ms = max(int(lease.total_seconds() * 1000), 1)
        claimed = yield RunScript("claim", [self.keys.schedule(kind)], [max(limit, 1), lease_ms])
        return list(claimed)

    def fire(self, kind: str, request_id: str) -> Plan:
        """Take the request's due action of `kind` (once, whoever else tries) and put its next
        one on the schedule; nothing is scheduled for a closed request."""
        check_request_id(request_id)
        schedule = self.keys.schedule(kind)
        reply = yield RunScript("fire", self.keys.request_keys(request_id), [kind])
        status = reply[0]
        count, next_due, before = _fire_reply(reply)
        # The schedule follows the state: the next due time, or no entry at all.
        if next_due:
            yield Call("zadd", (schedule, {request_id: int(next_due)}))
        else:
            yield Call("zrem", (schedule, request_id))
        if status == "unknown":
            return Fired(fired=False, count=0, request=None)
        request = yield from self._read(request_id)
        if status == "fired" and kind == "escalate" and request.status is Status.PENDING:
            calls = self._list_escalated(request)
            if calls:
                yield Batch(calls)
        resend = Owed.from_json(reply[5]) if status == "resend" else None
        return Fired(fired=status in ("fired", "resend"), count=count, request=request,
                     before=before, resend=resend)

    def owe(self, request: ApprovalRequest, owed: Owed, after: timedelta,
            kind: str = "remind") -> Plan:
        """Keep the posts of the request's last reminder (or, kind "escalate", announcement)
        that Slack surely did not take, and put them on that kind's schedule `after` from now
        (or sooner, if its next action is due sooner); `fire` takes them once. False when the
        request has closed."""
        if kind not in ("remind", "escalate"):
            raise InvalidRequest(f"owe: {kind!r} is neither 'remind' nor 'escalate'")
        reply = yield RunScript("fire", self.keys.request_keys(request.id),
                                ["owe", owed.to_json(), kind])
        if reply[0] != "owed":
            return False
        schedule = self.keys.schedule(kind)
        expire_at = _to_ms(request.deadline) + self.retention_ms
        due = int(reply[1]) + int(after.total_seconds() * 1000)
        yield Batch([Call("zadd", (schedule, {request.id: due}), {"lt": True}),
                     Call("pexpireat", (schedule, expire_at), {"nx": True}),
                     Call("pexpireat", (schedule, expire_at), {"gt": True})])
        return True

    def read_specs(self, request_ids: list[str], corrupt: dict[str, str] | None = None) -> Plan:
        """The specs of these requests, by id (one gone from Redis is left out): written once
        at create, they say what a sweeper must know before it fires (quiet hours, tiers).
        A spec that is not valid is left out too, its reason put in `corrupt` by id (when
        given): one bad record must not hold back the others claimed with it."""
        if not request_ids:
            return {}
        raw = yield Batch([Call("get", (self.keys.spec(check_request_id(i)),))
                           for i in request_ids])
        specs = {}
        for request_id, spec_json in zip(request_ids, raw, strict=True):
            if spec_json is None:
                continue
            try:
                specs[request_id] = RequestSpec.model_validate_json(spec_json,
                                                                    context={"stored": True})
            except ValidationError as e:
                if corrupt is not None:
                    corrupt[request_id] = f"stored spec is invalid ({e})"
        return specs

    def unschedule(self, kind: str, request_ids: list[str]) -> Plan:
        """Drop these requests' entries from the schedule of `kind` (a corrupt record that
        would fail again at every claim)."""
        if request_ids:
            yield Call("zrem", (self.keys.schedule(kind), *request_ids))

    def fire_many(self, kind: str, specs: Mapping[str, RequestSpec]) -> Plan:
        """`fire` for many requests (their specs read by `read_specs`) in two round trips: the
        scripts, then the schedule and the reached tiers' lists. Each script is the same as
        `fire`'s, so each action still fires once whoever else fires it. Returns Fired by id."""
        ids = list(specs)
        if not ids:
            return {}
        replies = yield Scripts([RunScript("fire", self.keys.request_keys(check_request_id(i)),
                                           [kind]) for i in ids])
        schedule = self.keys.schedule(kind)
        calls: list[Call] = []
        results: dict[str, Fired] = {}
        for request_id, reply in zip(ids, replies, strict=True):
            if isinstance(reply, Exception):
                # Its schedule entry stays a lease ahead: it is tried again then.
                results[request_id] = Fired(fired=False, count=0, request=None,
                                            error=f"fire failed: {reply}")
                continue
            count, next_due, before = _fire_reply(reply)
            # The schedule follows the state: the next due time, or no entry at all.
            calls.append(Call("zadd", (schedule, {request_id: int(next_due)})) if next_due
                         else Call("zrem", (schedule, request_id)))
            if reply[0] not in ("fired", "resend"):
                results[request_id] = Fired(fired=False, count=0, request=None)
                continue
            try:
                state = dict(zip(reply[4][::2], reply[4][1::2], strict=True))
                request = parse_request(request_id, specs[request_id], state)
                resend = Owed.from_json(reply[5]) if reply[0] == "resend" else None
            except (CorruptRecord, ValueError, KeyError, TypeError) as e:
                # Fired (counted) but not readable: nothing can be sent for it.
                results[request_id] = Fired(fired=False, count=count, request=None,
                                            before=before, error=f"fired but unreadable: {e}")
                continue
            if kind == "escalate":
                calls += self._list_escalated(request)
            results[request_id] = Fired(fired=True, count=count, request=request, before=before,
                                        resend=resend)
        if calls:
            yield Batch(calls)
        return results

    def _list_escalated(self, request: ApprovalRequest) -> list[Call]:
        """The reached tiers' people now see the request in their lists (App Home)."""
        deadline = _to_ms(request.deadline)
        expire_at = deadline + self.retention_ms
        voted = {v.user for v in request.votes}
        people = [p for p in request.escalated_to if p not in voted]
        indexes = [self.keys.pending_by_group(p) if p.startswith("S")
                   else self.keys.pending_by_approver(p) for p in people]
        calls = [Call("zadd", (index, {request.id: deadline})) for index in indexes]
        groups = [p for p in people if p.startswith("S")]
        if groups:
            calls.append(Call("zadd", (self.keys.pending_groups(), dict.fromkeys(groups, deadline)),
                              {"gt": True}))
        for index in indexes:
            calls += [Call("pexpireat", (index, expire_at), {"nx": True}),
                      Call("pexpireat", (index, expire_at), {"gt": True})]
        return calls

    # -- suspended flow runs (state/resuming.py) ---------------------------------------------

    def _resume_now(self, request: ApprovalRequest) -> list[Call]:
        """A request closed with a suspended run: its resume goes on the schedule, due now. The
        script already made it due in the state; should this write be lost, the watch entry
        the suspend left on the schedule finds it."""
        if request.suspended_run is None or request.decision is None:
            return []
        due = _to_ms(request.decision.decided_at)
        return [Call("zadd", (self.keys.schedule(RESUME), {request.id: due}))]

    def suspend(self, request_id: str, flow_run_id: str, watch_at: datetime,
                server: str = "") -> Plan:
        """Record that `flow_run_id` of the orchestrator `server` suspends on this request
        (unless it is decided: None), and put a watch on the schedule at `watch_at`.
        Returns (round, deadline)."""
        check_request_id(request_id)
        if not flow_run_id or len(flow_run_id) > 100:
            raise InvalidRequest("flow_run_id: 1 to 100 characters")
        if len(server) > 500:
            raise InvalidRequest("server: at most 500 characters")
        reply = yield RunScript("suspend", self.keys.request_keys(request_id),
                                [flow_run_id, server])
        if reply[0] == "unknown":
            raise RequestNotFound(request_id)
        if reply[0] != "suspend":
            return None
        # LT: never pull back a resume that a decision made due meanwhile.
        yield Call("zadd", (self.keys.schedule(RESUME), {request_id: _to_ms(watch_at)}),
                   {"lt": True})
        return int(reply[1]), ms_to_datetime(int(reply[2]))

    def resume_state(self, request_id: str) -> Plan:
        """The request's suspended run as the state hash says now (a ResumeState), read with
        Redis's clock; None for an unknown request."""
        check_request_id(request_id)
        (seconds, micros), (status, run, due, server, missing) = yield Batch(
            [Call("time"), Call("hmget", (self.keys.state(request_id), "status", "resume_run",
                                          "resume_due", "resume_server", "resume_missing"))])
        if status is None:
            return None
        return ResumeState(pending=status == Status.PENDING.value, run=run,
                           due=None if due is None else ms_to_datetime(int(due)),
                           server=server or None,
                           missing_since=None if missing is None else ms_to_datetime(int(missing)),
                           now=ms_to_datetime(int(seconds) * 1000 + int(micros) // 1000))

    def resume_missing(self, request_id: str, now: datetime) -> Plan:
        """The run's server said it has no such run at `now`: returns since when it says so."""
        check_request_id(request_id)
        state = self.keys.state(request_id)
        _, since = yield Batch([Call("hsetnx", (state, "resume_missing", _to_ms(now))),
                                Call("hget", (state, "resume_missing"))])
        return ms_to_datetime(int(since))

    def resume_found(self, request_id: str) -> Plan:
        """The run's server knows it again: a later "no such run" starts a fresh count."""
        check_request_id(request_id)
        yield Call("hdel", (self.keys.state(request_id), "resume_missing"))

    def resumed(self, request_id: str) -> Plan:
        """The run was resumed (or is gone): nothing more is owed."""
        check_request_id(request_id)
        yield Batch([Call("hdel", (self.keys.state(request_id), "resume_due", "resume_missing")),
                     Call("zrem", (self.keys.schedule(RESUME), request_id))])

    def unwatch(self, request_id: str) -> Plan:
        """The run waiting on this request is running again and reads it itself: nothing is
        owed to it any more (a resume left over would wake its next suspend for nothing).
        Its next suspend records itself afresh."""
        check_request_id(request_id)
        yield Batch([Call("hdel", (self.keys.state(request_id), "resume_run", "resume_due",
                                   "resume_server", "resume_missing")),
                     Call("zrem", (self.keys.schedule(RESUME), request_id))])

    def resume_later(self, request_id: str, at: datetime | None) -> Plan:
        """Try (or watch) again at `at`; None drops the entry."""
        check_request_id(request_id)
        schedule = self.keys.schedule(RESUME)
        if at is None:
            yield Call("zrem", (schedule, request_id))
        else:
            yield Call("zadd", (schedule, {request_id: _to_ms(at)}))

    def defer(self, kind: str, request_id: str, until: datetime) -> Plan:
        """Hold a claimed action until `until` (quiet hours); its due time in the state stays,
        so it fires at the first sweep after `until`."""
        check_request_id(request_id)
        yield Call("zadd", (self.keys.schedule(kind), {request_id: _to_ms(until)}), {"xx": True})

    def defer_many(self, kind: str, holds: Mapping[str, datetime]) -> Plan:
        """`defer` for many claimed actions in one command: request id -> until when."""
        if holds:
            yield Call("zadd", (self.keys.schedule(kind),
                                {check_request_id(i): _to_ms(until) for i, until in holds.items()}),
                       {"xx": True})

    def attach_message(self, request_id: str, channel: str, ts: str) -> Plan:
        check_request_id(request_id)
        if not channel or not ts or len(channel) > 80 or len(ts) > 40:
            raise InvalidRequest("attach_message: channel and ts are required")
        (status,) = yield RunScript("attach", self.keys.request_keys(request_id), [channel, ts])
        if status == "unknown":
            raise RequestNotFound(request_id)
        return status == "attached"

    def mark_stale(self, request_id: str) -> Plan:
        """The request's message could not be edited: show it again later."""
        check_request_id(request_id)
        key = self.keys.stale_messages()
        yield Batch([Call("sadd", (key, request_id)), Call("pexpire", (key, self.retention_ms))])

    def take_stale(self, limit: int) -> Plan:
        """Up to `limit` requests whose message is stale, removed from the set as they are
        taken, so two bots never both edit one; an edit that fails again marks it again."""
        taken = yield Call("spop", (self.keys.stale_messages(), limit))
        return sorted(taken or [])

    # -- approval policies -----------------------------------------------------------------

    def keep_policy(self, policy_hash: str, text: str, until: datetime) -> Plan:
        """Keep a policy's text under its hash until `until` plus the retention (a request's
        deadline): written once, its expiry only ever extended (NX gives it one, GT extends)."""
        key = self.keys.policy(_check_policy_hash(policy_hash))
        expire_at = _to_ms(until) + self.retention_ms
        yield Batch([Call("set", (key, text), {"nx": True}),
                     Call("pexpireat", (key, expire_at), {"nx": True}),
                     Call("pexpireat", (key, expire_at), {"gt": True})])

    def policy_text(self, policy_hash: str) -> Plan:
        """The text kept under the hash, or None once it has expired (or never was kept)."""
        text = yield Call("get", (self.keys.policy(_check_policy_hash(policy_hash)),))
        return text

    # -- waiting ---------------------------------------------------------------------------

    def wait(self, request_id: str, timeout: float) -> Plan:
        """Block until the request closes or `timeout` seconds pass; never polls."""
        check_request_id(request_id)
        if not 0 < timeout <= 3600:
            raise InvalidRequest("timeout: between 0 and 3600 seconds")
        request = yield from self._read(request_id)
        if request.decision is not None:
            return request.decision
        done = self.keys.done(request_id)
        popped = yield Call("blpop", ([done],), {"timeout": timeout})
        if popped is None:
            return None
        # Put the token back so every other waiter on this request wakes too.
        # BLPOP deleted the emptied list, so the TTL is set again on the re-created key.
        yield Batch([Call("rpush", (done, "1")), Call("pexpire", (done, self.retention_ms))])
        request = yield from self._read(request_id)
        return request.decision
