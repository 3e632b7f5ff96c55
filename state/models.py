"""The approval request, its votes and its decision, validated at every boundary.

A `RequestSpec` is what a caller asks for; an `ApprovalRequest` is what the store holds
(spec + server-side state). Times are UTC; deadlines are decided by the Redis server clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from .hours import BusinessHours

# Crockford base32 without i, l, o, u: ids survive being read aloud or typed in a slash command.
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
REQUEST_ID_LENGTH = 16
REQUEST_ID_PATTERN = re.compile(rf"^[{ID_ALPHABET}]{{{REQUEST_ID_LENGTH}}}$")

USER_ID_PATTERN = r"^[UW][A-Z0-9]{2,31}$"
GROUP_ID_PATTERN = r"^S[A-Z0-9]{2,31}$"
# Slack accepts a conversation id or a channel name for chat.postMessage.
CHANNEL_PATTERN = r"^([CGD][A-Z0-9]{2,31}|#?[a-z0-9][a-z0-9._-]{0,79})$"

MAX_TITLE = 200
MAX_SUMMARY = 3000
MAX_FACTS = 10
MAX_REASON = 500
MAX_APPROVERS = 50
MAX_GROUPS = 10
MAX_EMAIL_APPROVERS = 20
MAX_TIMEOUT = timedelta(days=90)
MAX_REMINDERS = 20
MAX_TIERS = 5
MIN_REMIND_EVERY = timedelta(seconds=1)

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
# A mail address as a person types it: one @, no spaces, brackets, quotes or commas (nothing a
# mail header could be split or folded on), a dotted domain; compared in lower case.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"


def _email_address(value: str) -> str:
    address = value.strip().lower()
    if len(address) > 254 or not re.match(EMAIL_PATTERN, address):
        raise ValueError(f"{value!r} is not a mail address (like ann@example.com)")
    return address


EmailAddress = Annotated[str, AfterValidator(_email_address)]
# An email approver votes as `mailto:<address>`: a voter id no Slack user id can spell.
EMAIL_VOTER_PREFIX = "mailto:"
GroupId = Annotated[str, StringConstraints(pattern=GROUP_ID_PATTERN)]
ChannelRef = Annotated[str, StringConstraints(pattern=CHANNEL_PATTERN)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON)]


class Outcome(StrEnum):
    """A vote, and what a timeout turns into."""

    APPROVE = "approve"
    REJECT = "reject"


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def closed(self) -> bool:
        return self is not Status.PENDING


class DecideStatus(StrEnum):
    """What `decide` did; every refusal has its own member so the bot can say exactly why."""

    RECORDED = "recorded"  # vote counted, quorum not reached yet
    APPROVED = "approved"  # this vote reached the quorum
    # Not recorded: an escalation tier's lower quorum was already met, so the request closed
    # approved just now (whoever clicked, whatever they chose).
    SETTLED = "settled"
    REJECTED = "rejected"  # this vote rejected the request
    UNKNOWN = "unknown"
    CLOSED = "closed"
    EXPIRED = "expired"
    NOT_ELIGIBLE = "not_eligible"
    SELF_APPROVAL = "self_approval"
    DUPLICATE_VOTE = "duplicate_vote"

    @property
    def accepted(self) -> bool:
        return self in (DecideStatus.RECORDED, DecideStatus.APPROVED, DecideStatus.REJECTED)


class CloseStatus(StrEnum):
    """What `cancel`, `expire` and `resolve` did."""

    CLOSED_NOW = "closed_now"
    UNKNOWN = "unknown"
    ALREADY_CLOSED = "already_closed"
    NOT_DUE = "not_due"
    NOT_REQUESTER = "not_requester"


class Fact(BaseModel):
    """One label/value pair shown as a field of the Slack message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class EscalationTier(BaseModel):
    """After `after` (counted from the request's creation) the people in `to` (users and/or
    user groups) may vote too. `quorum`, when given, is the approvals needed from the tier's
    time on (until a later tier sets another); without it the quorum stays as it was."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    after: Annotated[timedelta, Field(gt=timedelta(0), le=MAX_TIMEOUT)]
    to: Annotated[list[Annotated[str, StringConstraints(pattern=f"{USER_ID_PATTERN}|{GROUP_ID_PATTERN}")]],
                  Field(min_length=1, max_length=MAX_APPROVERS)]
    quorum: Annotated[int, Field(ge=1, le=MAX_APPROVERS)] | None = None

    @property
    def users(self) -> list[str]:
        return [p for p in self.to if not p.startswith("S")]

    @property
    def groups(self) -> list[str]:
        return [p for p in self.to if p.startswith("S")]


class RequestSpec(BaseModel):
    """What a flow, the CLI or the bot asks for. Validation here is the only gate into Redis."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE)]
    summary: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_SUMMARY)] = ""
    facts: Annotated[list[Fact], Field(max_length=MAX_FACTS)] = []
    requester: UserId | None = None
    approvers: Annotated[list[UserId], Field(max_length=MAX_APPROVERS)] = []
    approver_groups: Annotated[list[GroupId], Field(max_length=MAX_GROUPS)] = []
    # People outside Slack: each gets a mail with approve / reject links (bot/mailer.py).
    email_approvers: Annotated[list[EmailAddress], Field(max_length=MAX_EMAIL_APPROVERS)] = []
    quorum: Annotated[int, Field(ge=1, le=MAX_APPROVERS)] = 1
    allow_self_approval: bool = False
    channel: ChannelRef
    timeout: Annotated[timedelta, Field(gt=timedelta(0), le=MAX_TIMEOUT)] | None = timedelta(hours=24)
    deadline: datetime | None = None
    timeout_outcome: Outcome = Outcome.REJECT
    flow_run_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    gate: Annotated[str, StringConstraints(max_length=100)] | None = None
    # Which rule of which approval policy routed the request (`approvals policy show HASH`).
    policy_rule: Annotated[str, StringConstraints(max_length=100)] | None = None
    policy_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,64}$")] | None = None
    # Reminders to those who have not voted yet, every `remind_every`, at most `remind_limit`.
    remind_every: Annotated[timedelta, Field(ge=MIN_REMIND_EVERY, le=MAX_TIMEOUT)] | None = None
    remind_limit: Annotated[int, Field(ge=1, le=MAX_REMINDERS)] = 3
    escalate: Annotated[list[EscalationTier], Field(max_length=MAX_TIERS)] = []
    # Reminders and escalation announcements wait for these hours; eligibility does not.
    business_hours: BusinessHours | None = None

    @model_validator(mode="after")
    def _check_rules(self, info: ValidationInfo) -> Self:
        afters = [tier.after for tier in self.escalate]
        if afters != sorted(set(afters)):
            raise ValueError("escalate: each tier comes later than the one before")
        if self.escalate and self.open_to_anyone:
            raise ValueError("escalate: the request is open to anyone already; name approvers")
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError("approvers: each user may be named once")
        if len(set(self.approver_groups)) != len(self.approver_groups):
            raise ValueError("approver_groups: each group may be named once")
        if len(set(self.email_approvers)) != len(self.email_approvers):
            raise ValueError("email_approvers: each address may be named once")
        # A stored spec is re-read long after its deadline, and may predate a newer rule.
        stored = bool(info.context and info.context.get("stored"))
        # Group sizes are unknown here, so the quorum can only be checked against named users.
        if (self.approvers or self.email_approvers) and not self.all_groups and not stored:
            self._check_quorum_reachable()
        if not stored:
            self._check_tier_quorums()
        if self.deadline is not None:
            if self.deadline.tzinfo is None:
                raise ValueError("deadline: must carry a time zone")
            if not stored and self.deadline <= datetime.now(UTC):
                raise ValueError("deadline: must be in the future")
            # The same bound as `timeout`: a deadline is only another way to spell it.
            if not stored and self.deadline > datetime.now(UTC) + MAX_TIMEOUT:
                raise ValueError(f"deadline: at most {MAX_TIMEOUT.days} days ahead")
        return self

    def _check_quorum_reachable(self) -> None:
        """Refuse a quorum the named approvers could never reach: a request that can only
        time out is a mistake to report now, not a day later. Escalation tiers' people count:
        they may approve from their tier's time on."""
        people = list(dict.fromkeys([*self.approvers, *(u for t in self.escalate for u in t.users),
                                     *self.email_voters]))
        named = len(people)
        if self.quorum > named:
            raise ValueError(f"quorum: {self.quorum} approvals needed but only {named} "
                             f"approver{'' if named == 1 else 's'} named")
        if self.requester in people and not self.allow_self_approval:
            others = named - 1
            if self.quorum > others:
                raise ValueError(
                    f"quorum: {self.quorum} approval{'' if self.quorum == 1 else 's'} needed but "
                    f"only {others} of the {named} approvers may approve: the requester "
                    f"{self.requester} is one of them and may not approve their own request "
                    "(name another approver, lower the quorum or allow self-approval)")

    def _check_tier_quorums(self) -> None:
        """A tier's quorum holds from its time until a later tier sets another; it is never more
        than the one before it, and those who may vote meanwhile must be able to reach it (like
        the spec's own quorum, only while no user group is eligible: group sizes are unknown)."""
        in_force = self.quorum
        for index, tier in enumerate(self.escalate):
            if tier.quorum is None:
                continue
            # A tier may lower the quorum, never raise it: approvals met under a lower one
            # already settled the request (decide, the sweeper and the deadline all say so).
            if tier.quorum > in_force:
                raise ValueError(
                    f"escalate[{index}].quorum: {tier.quorum} is more than the {in_force} "
                    "already in force before that tier; a tier may only lower the quorum")
            in_force = tier.quorum
            end = next((j for j in range(index + 1, len(self.escalate))
                        if self.escalate[j].quorum is not None), len(self.escalate))
            tiers = self.escalate[:end]
            if self.approver_groups or any(t.groups for t in tiers):
                continue
            people = set(self.approvers) | set(self.email_voters)
            people |= {u for t in tiers for u in t.users}
            may = len(people) - (self.requester in people and not self.allow_self_approval)
            if tier.quorum > may:
                raise ValueError(
                    f"escalate[{index}].quorum: {tier.quorum} approvals needed from that tier "
                    f"on but only {may} of the people named may approve by then"
                    + (f" (the requester {self.requester} may not approve their own request)"
                       if may < len(people) else ""))

    def quorum_with(self, tiers: int) -> int:
        """The approvals needed once the first `tiers` escalation tiers have come: the latest
        of them that sets a quorum, else the request's own."""
        return next((t.quorum for t in reversed(self.escalate[:tiers]) if t.quorum is not None),
                    self.quorum)

    @property
    def open_to_anyone(self) -> bool:
        return not self.approvers and not self.approver_groups and not self.email_approvers

    @property
    def email_voters(self) -> list[str]:
        """The voter ids of the email approvers (`mailto:<address>`)."""
        return [email_voter(address) for address in self.email_approvers]

    @property
    def all_groups(self) -> list[str]:
        """Every user group that is or may become eligible (the escalation tiers' too)."""
        groups = list(self.approver_groups)
        for tier in self.escalate:
            groups += [g for g in tier.groups if g not in groups]
        return groups


class Vote(BaseModel):
    model_config = ConfigDict(frozen=True)

    user: str
    vote: Outcome
    at: datetime


class Decision(BaseModel):
    """The final word on a request; `approved` already applies the timeout outcome."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    status: Status
    approved: bool
    decided_by: str | None
    decided_at: datetime
    reason: str | None
    votes: list[Vote]


class ApprovalRequest(BaseModel):
    """A stored request: the spec plus what happened to it."""

    model_config = ConfigDict(frozen=True)

    id: str
    spec: RequestSpec
    status: Status
    created_at: datetime
    deadline: datetime
    votes: list[Vote]
    message_channel: str | None = None
    message_ts: str | None = None
    decision: Decision | None = None
    reminders_sent: int = 0
    # Email voter (`mailto:<address>`) -> the Slack user the address belongs to: one voter.
    aliases: dict[str, str] = {}
    # Email approvers whose mail is done with: sent, or refused for good.
    mailed: frozenset[str] = frozenset()
    tiers_reached: int = 0  # escalation tiers announced (a tier's people may vote once due)
    # The flow run suspended while waiting on this request; whoever records the decision
    # resumes it (state/resuming.py).
    suspended_run: str | None = None

    @field_validator("spec", mode="wrap")
    @classmethod
    def _stored_spec(cls, value: object, handler: ValidatorFunctionWrapHandler) -> RequestSpec:
        """A stored spec may name a deadline that has passed since; only new specs must be future."""
        if isinstance(value, RequestSpec):
            return value
        return RequestSpec.model_validate(value, context={"stored": True})

    @property
    def revision(self) -> tuple[int, int, int]:
        """Orders the states one request passes through: a decided state is newer than any
        pending one, and among pending ones more votes is newer (votes are never removed),
        then more escalation tiers announced."""
        return (0 if self.decision is None else 1, len(self.votes), self.tiers_reached)

    def tiers_due(self, now: datetime) -> list[EscalationTier]:
        """The escalation tiers whose time has come by `now`, announced or not."""
        return [t for t in self.spec.escalate if self.created_at + t.after <= now]

    def quorum_at(self, now: datetime) -> int:
        """The approvals needed at `now`, by the tiers whose time has come (as decide.lua
        judges it by the server's clock)."""
        return self.spec.quorum_with(len(self.tiers_due(now)))

    @property
    def escalated_to(self) -> list[str]:
        """The users and groups of the tiers announced so far."""
        return [p for tier in self.spec.escalate[:self.tiers_reached] for p in tier.to]

    @property
    def approvals(self) -> list[Vote]:
        return [v for v in self.votes if v.vote is Outcome.APPROVE]

    def refusal_for(self, user: str, vote: Outcome,
                    groups: frozenset[str] | set[str] = frozenset()) -> DecideStatus | None:
        """The refusal `decide` would answer now, by the same rules as decide.lua, or None.

        For showing a reason before anything is written (e.g. before opening the reject
        modal); the Lua script stays the authority.
        """
        if self.status.closed:
            return DecideStatus.CLOSED
        if datetime.now(UTC) >= self.deadline:
            return DecideStatus.EXPIRED
        now = datetime.now(UTC)
        escalated = [p for tier in self.tiers_due(now) for p in tier.to]
        eligible = (
            self.spec.open_to_anyone
            or user in self.spec.approvers
            or user in self.spec.email_voters
            # A Slack user whose address was named among the email approvers.
            or user in self.aliases.values()
            or user in escalated
            or bool(set(self.spec.approver_groups) & set(groups))
            or bool(set(escalated) & set(groups))
        )
        if not eligible:
            return DecideStatus.NOT_ELIGIBLE
        if vote is Outcome.APPROVE and user == self.spec.requester and not self.spec.allow_self_approval:
            return DecideStatus.SELF_APPROVAL
        if any(v.user == user for v in self.votes):
            return DecideStatus.DUPLICATE_VOTE
        return None

    def may_decide(self, user: str, groups: frozenset[str] | set[str] = frozenset()) -> bool:
        """Whether `user` (a member of `groups`) could approve now: what pending lists show."""
        return self.refusal_for(user, Outcome.APPROVE, groups) is None


class AuditEvent(BaseModel):
    """One line of a request's audit trail, in the order Redis appended it."""

    model_config = ConfigDict(frozen=True, extra="allow")

    event: str
    at: datetime
    user: str | None = None
    vote: Outcome | None = None
    reason: str | None = None
    status: Status | None = None
    approved: bool | None = None


class DecideResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: DecideStatus
    request: ApprovalRequest | None


class CloseResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: CloseStatus
    request: ApprovalRequest | None


def email_voter(address: str) -> str:
    """The voter id an email approver's links vote as."""
    return EMAIL_VOTER_PREFIX + address.strip().lower()


def email_of(voter: str) -> str | None:
    """The address of an email voter id, or None for a Slack user."""
    return voter[len(EMAIL_VOTER_PREFIX):] if voter.startswith(EMAIL_VOTER_PREFIX) else None


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
