"""The policy document: its YAML shape as pydantic models, parsed with each problem's line.

    version: 1
    defaults: {channel, approvers, approver_groups, email_approvers, quorum, timeout, timeout_outcome,
               allow_self_approval, remind_every, remind_limit, escalate, business_hours, lock}
    rules: [{name, match: {flow, gate, requester, params, facts}, <the keys of defaults>,
             auto_approve: reason, deny: reason}, ...]          first match wins

`parse_policy(text, origin)` returns a Policy or raises PolicyInvalid with `ORIGIN:LINE:
message` problems; `check_policy` adds the checks a person wants from `approvals policy check`
(unknown flow names).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from slack_approvals.core.durations import parse_duration
from slack_approvals.core.errors import BadInput
from slack_approvals.state.hours import BusinessHours
from slack_approvals.state.models import (
    GROUP_ID_PATTERN,
    MAX_APPROVERS,
    MAX_EMAIL_APPROVERS,
    MAX_GROUPS,
    MAX_REASON,
    MAX_REMINDERS,
    MAX_TIERS,
    MAX_TIMEOUT,
    MIN_REMIND_EVERY,
    USER_ID_PATTERN,
    ChannelRef,
    EmailAddress,
    EscalationTier,
    GroupId,
    Outcome,
    UserId,
)

from .errors import PolicyInvalid, Problem
from .matching import Condition, parse_condition

MAX_RULES = 500
MAX_TEXT = 1_000_000
# Names a person may guess for keys spelled otherwise: a hint beats "extra inputs".
RENAMED_KEYS = {"reminders": "remind_every and remind_limit", "escalation": "escalate",
                "quiet_hours": "business_hours"}
HASH_LENGTH = 16
# A flow name no flow has: stands in for the match of a rule that did not validate.
NEVER = "\x00"


def _listed(value: object) -> object:
    """One name or a list of names: `flow: payment-approval` or `flow: [a, b]`."""
    if isinstance(value, str):
        return [value]
    return value


def _timeout(value: object) -> object:
    """`24h`, `90m`, `1d12h` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30m, 24h or 7d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except BadInput as e:
            raise ValueError(str(e)) from e
    return value


def _reason(value: object) -> object:
    if isinstance(value, bool | int | float):
        return str(value)
    return value


Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], BeforeValidator(_listed),
                  Field(min_length=1, max_length=100)]
Users = Annotated[list[UserId], BeforeValidator(_listed), Field(max_length=MAX_APPROVERS)]
Groups = Annotated[list[GroupId], BeforeValidator(_listed), Field(max_length=MAX_GROUPS)]
Emails = Annotated[list[EmailAddress], BeforeValidator(_listed), Field(max_length=MAX_EMAIL_APPROVERS)]
Timeout = Annotated[timedelta, BeforeValidator(_timeout), Field(gt=timedelta(0), le=MAX_TIMEOUT)]
RemindEvery = Annotated[timedelta, BeforeValidator(_timeout),
                        Field(ge=MIN_REMIND_EVERY, le=MAX_TIMEOUT)]
Reason = Annotated[str, BeforeValidator(_reason), Field(min_length=1, max_length=MAX_REASON)]
Conditions = dict[Annotated[str, Field(min_length=1, max_length=64)],
                  Annotated[Condition, BeforeValidator(parse_condition)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, Mapping):
            for key, spelled in RENAMED_KEYS.items():
                if key in data:
                    raise ValueError(f"`{key}` is not a key; write {spelled}")
        return data


class Match(_Strict):
    """What a rule applies to; every key given must hold. No keys: every request."""

    flow: Names | None = None
    gate: Names | None = None
    requester: Users | None = None
    params: Conditions = {}
    facts: Conditions = {}

    @model_validator(mode="after")
    def _names_once(self) -> Self:
        for what, conditions in (("params", self.params), ("facts", self.facts)):
            folded = [name.casefold() for name in conditions]
            if len(set(folded)) != len(folded):
                raise ValueError(f"{what}: a name is given twice (names ignore case)")
        return self

    @property
    def everything(self) -> bool:
        return not (self.flow or self.gate or self.requester or self.params or self.facts)

    def holds(self, *, flow: str | None, gate: str | None, requester: str | None,
              params: Mapping[str, object], facts: Mapping[str, object]) -> bool:
        if self.flow is not None and not _named(flow, self.flow):
            return False
        if self.gate is not None and not _named(gate, self.gate):
            return False
        if self.requester is not None and (requester or "").upper() not in {
                u.upper() for u in self.requester}:
            return False
        return _conditions_hold(self.params, params) and _conditions_hold(self.facts, facts)


def _named(name: str | None, patterns: list[str]) -> bool:
    """Case-insensitive; `*` and `?` are wildcards (`gate: department:*`)."""
    if name is None:
        return False
    folded = name.casefold()
    return any(fnmatchcase(folded, pattern.casefold()) for pattern in patterns)


def _conditions_hold(conditions: Mapping[str, Condition], values: Mapping[str, object]) -> bool:
    folded = {str(k).casefold(): v for k, v in values.items()}
    return all(condition.matches(folded.get(name.casefold()))
               for name, condition in conditions.items())


class Tier(_Strict):
    """One escalation tier: `{after: 4h, to: [U…, S…], quorum: 1}`; `quorum` (optional) is the
    approvals needed from the tier's time on."""

    after: Timeout
    to: Annotated[list[Annotated[str, Field(pattern=f"{USER_ID_PATTERN}|{GROUP_ID_PATTERN}")]],
                  BeforeValidator(_listed), Field(min_length=1, max_length=MAX_APPROVERS)]
    quorum: Annotated[int, Field(ge=1, le=MAX_APPROVERS)] | None = None

    def as_spec(self) -> EscalationTier:
        return EscalationTier(after=self.after, to=list(self.to), quorum=self.quorum)


class Keys(_Strict):
    """What a rule (or the defaults) decides; None: not decided here."""

    channel: ChannelRef | None = None
    approvers: Users | None = None
    approver_groups: Groups | None = None
    email_approvers: Emails | None = None
    quorum: Annotated[int, Field(ge=1, le=MAX_APPROVERS)] | None = None
    timeout: Timeout | None = None
    timeout_outcome: Outcome | None = None
    allow_self_approval: bool | None = None
    remind_every: RemindEvery | None = None
    remind_limit: Annotated[int, Field(ge=1, le=MAX_REMINDERS)] | None = None
    escalate: Annotated[list[Tier], Field(min_length=1, max_length=MAX_TIERS)] | None = None
    business_hours: BusinessHours | None = None

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for what, names in (("approvers", self.approvers), ("approver_groups", self.approver_groups),
                            ("email_approvers", self.email_approvers)):
            if names is not None and len(set(names)) != len(names):
                raise ValueError(f"{what}: each is named once")
        return self

    def decided(self) -> dict[str, Any]:
        decided = {name: value for name, value in self if value is not None and name in ROUTING_KEYS}
        if self.escalate is not None:
            decided["escalate"] = [tier.as_spec() for tier in self.escalate]
        return decided


ROUTING_KEYS = ("channel", "approvers", "approver_groups", "email_approvers", "quorum", "timeout",
                "timeout_outcome", "allow_self_approval", "remind_every", "remind_limit", "escalate",
                "business_hours")


class Defaults(Keys):
    """Under every rule; a rule's own keys win. `lock: true`: only the policy names approvers."""

    lock: bool = False


class Rule(Keys):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.:/-]*$")]
    match: Match = Match()
    auto_approve: Reason | None = None
    deny: Reason | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Self:
        if self.auto_approve is not None and self.deny is not None:
            raise ValueError("a rule either auto-approves or denies, not both")
        return self


class PolicyDocument(_Strict):
    version: Literal[1]
    defaults: Defaults = Defaults()
    rules: Annotated[list[Rule], Field(max_length=MAX_RULES)] = []


@dataclass(frozen=True)
class Policy:
    """A validated document with its text, the text's hash and where it came from."""

    document: PolicyDocument
    text: str
    hash: str
    origin: str
    builtin: bool = False


def policy_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


# -- parsing with lines ------------------------------------------------------------------------

Path = tuple[str | int, ...]


def _lines(node: yaml.Node, path: Path, found: dict[Path, int]) -> None:
    """The line of every key and item, by its path in the document (1-based)."""
    found.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            found[(*path, name)] = key.start_mark.line + 1
            _lines(value, (*path, name), found)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), found)


def _line_of(path: Path, lines: Mapping[Path, int]) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _where(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_WHAT = {"approvers": "a Slack user id (like U012AB3CD)", "requester": "a Slack user id (like U012AB3CD)",
         "approver_groups": "a Slack user group id (like S0614TZR7)",
         "channel": "a channel id (C0123ABC) or name (#approvals)",
         "name": "a rule name (letters, digits, spaces and -_.:/)"}


def _field(path: Path) -> str:
    return next((str(p) for p in reversed(path) if isinstance(p, str)), "")


def _problems(error: ValidationError, lines: Mapping[Path, int]) -> list[Problem]:
    problems = []
    for item in error.errors():
        # pydantic inserts the validator's name for annotated types (`function-before[...]`);
        # those are not keys of the document.
        path = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "string_pattern_mismatch":
            message = f"{item['input']!r} is not {_WHAT.get(_field(path), 'allowed here')}"
        if item["type"] == "extra_forbidden":
            message = f"unknown key `{path[-1]}`"
            path_text = _where(path[:-1])
        else:
            path_text = _where(path)
        if item["type"] == "missing":
            message = f"`{path[-1]}` is required"
            path_text = _where(path[:-1])
        problems.append(Problem(_line_of(path, lines), f"{path_text}: {message}" if path_text
                                else message))
    return problems


def parse_policy(text: str, origin: str = "policy", *, builtin: bool = False) -> Policy:
    """The validated policy; PolicyInvalid lists every problem with its line."""
    if len(text) > MAX_TEXT:
        raise PolicyInvalid(origin, [Problem(0, f"larger than {MAX_TEXT} characters")])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else 0
        reason = getattr(e, "problem", None) or str(e)
        return _raise(origin, [Problem(line, f"not valid YAML: {reason}")])
    if not isinstance(data, dict):
        return _raise(origin, [Problem(1, "expected a mapping with `version: 1` and `rules:`")])
    lines: dict[Path, int] = {}
    if node is not None:
        _lines(node, (), lines)
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as e:
        # The rules that do validate are still checked, so one run reports every problem.
        return _raise(origin, _problems(e, lines) + _rule_problems(_valid_parts(data), lines))
    problems = _rule_problems(document, lines)
    if problems:
        return _raise(origin, problems)
    return Policy(document=document, text=text, hash=policy_hash(text), origin=origin, builtin=builtin)


def _valid_parts(data: Mapping[str, Any]) -> PolicyDocument:
    """The document's valid rules and defaults, at their own positions (invalid rules become
    rules that match nothing, so indexes stay as written)."""
    try:
        defaults = Defaults.model_validate(data.get("defaults") or {})
    except ValidationError:
        defaults = Defaults()
    rules = []
    raw_rules = data.get("rules")
    for index, raw in enumerate(raw_rules if isinstance(raw_rules, list) else []):
        try:
            rules.append(Rule.model_validate(raw))
        except ValidationError:
            name = raw.get("name") if isinstance(raw, Mapping) else None
            rules.append(Rule(name=name if isinstance(name, str) and name else f"rule-{index}",
                              match=Match(flow=[NEVER]), deny="invalid"))
    return PolicyDocument(version=1, defaults=defaults, rules=rules)


def _raise(origin: str, problems: list[Problem]) -> Policy:
    raise PolicyInvalid(origin, sorted(problems, key=lambda p: p.line))


def _rule_problems(document: PolicyDocument, lines: Mapping[Path, int]) -> list[Problem]:
    """What pydantic cannot see alone: rules never reached, unreachable quorums, names twice."""
    problems = []
    seen: dict[str, int] = {}
    catch_all: str | None = None
    for index, rule in enumerate(document.rules):
        line = _line_of(("rules", index), lines)
        if catch_all is not None:
            problems.append(Problem(line, f"rules[{index}] `{rule.name}` is never used: rule "
                                          f"`{catch_all}` above it matches every request"))
        if rule.match.everything and catch_all is None:
            catch_all = rule.name
        if rule.name.casefold() in seen:
            problems.append(Problem(line, f"rules[{index}]: the name `{rule.name}` is used twice"))
        seen.setdefault(rule.name.casefold(), index)
        approvers = rule.approvers
        groups = rule.approver_groups
        emails = rule.email_approvers
        if approvers is None and groups is None and emails is None:
            approvers, groups = document.defaults.approvers, document.defaults.approver_groups
            emails = document.defaults.email_approvers
        approvers = [*(approvers or []), *(emails or [])] or None
        quorum = rule.quorum if rule.quorum is not None else document.defaults.quorum
        if quorum is not None and approvers and not groups and quorum > len(approvers) \
                and rule.auto_approve is None and rule.deny is None:
            where = ("rules", index, "quorum") if rule.quorum is not None else ("rules", index)
            problems.append(Problem(_line_of(where, lines),
                                    f"rules[{index}].quorum: {quorum} approvals needed but only "
                                    f"{len(approvers)} approvers listed and no groups"))
        if rule.auto_approve is None and rule.deny is None:
            escalate = rule.escalate if rule.escalate is not None else document.defaults.escalate
            at: Path = ("rules", index) if rule.escalate is None else ("rules", index, "escalate")
            problems += _tier_quorum_problems(f"rules[{index}].escalate", at, escalate or [],
                                              approvers, groups, lines, quorum)
    defaults = document.defaults
    if defaults.quorum and defaults.approvers and not defaults.approver_groups \
            and defaults.quorum > len(defaults.approvers):
        problems.append(Problem(_line_of(("defaults", "quorum"), lines),
                                f"defaults.quorum: {defaults.quorum} approvals needed but only "
                                f"{len(defaults.approvers)} approvers listed and no groups"))
    problems += _tier_quorum_problems("defaults.escalate", ("defaults", "escalate"),
                                      defaults.escalate or [], defaults.approvers,
                                      defaults.approver_groups, lines, defaults.quorum)
    return problems


def _tier_quorum_problems(name: str, at: Path, tiers: list[Tier], approvers: list[str] | None,
                          groups: list[str] | None, lines: Mapping[Path, int],
                          quorum: int | None = None) -> list[Problem]:
    """A tier's quorum holds from its time until a later tier sets another: it may lower the
    quorum in force (`quorum`, the rule's own when the policy says it), never raise it; with
    no group eligible by then, the approvers and those tiers' users must be able to reach it."""
    problems = []
    in_force = quorum
    for k, tier in enumerate(tiers):
        if tier.quorum is None:
            continue
        if in_force is not None and tier.quorum > in_force:
            where = (*at, k, "quorum") if at[-1] == "escalate" else at
            problems.append(Problem(_line_of(where, lines),
                                    f"{name}[{k}].quorum: {tier.quorum} is more than the "
                                    f"{in_force} in force before that tier; a tier may only "
                                    "lower the quorum"))
        in_force = tier.quorum
        if not approvers:
            continue
        end = next((j for j in range(k + 1, len(tiers)) if tiers[j].quorum is not None),
                   len(tiers))
        reach = tiers[:end]
        if groups or any(p.startswith("S") for t in reach for p in t.to):
            continue
        people = len(set(approvers) | {p for t in reach for p in t.to})
        if tier.quorum > people:
            where = (*at, k, "quorum") if at[-1] == "escalate" else at
            problems.append(Problem(_line_of(where, lines),
                                    f"{name}[{k}].quorum: {tier.quorum} approvals needed from "
                                    f"that tier on but only {people} approvers listed and no "
                                    "groups"))
    return problems


def check_policy(text: str, origin: str, known_flows: Collection[str]) -> list[str]:
    """Every problem as `ORIGIN:LINE: message`; empty when the policy is good to use.

    Beyond what loading refuses, flow names the registry does not know are reported (the
    running bot accepts them: a project may gate flows of its own)."""
    problems: list[Problem] = []
    try:
        document = parse_policy(text, origin).document
    except PolicyInvalid as e:
        problems += e.problems
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return e.lines()
        if not isinstance(data, dict):
            return e.lines()
        document = _valid_parts(data)
    lines: dict[Path, int] = {}
    _lines(yaml.compose(text, Loader=yaml.SafeLoader), (), lines)
    known = {name.casefold() for name in known_flows}
    for index, rule in enumerate(document.rules):
        for position, name in enumerate(rule.match.flow or []):
            if name == NEVER or any(c in name for c in "*?[") or name.casefold() in known:
                continue
            path: Path = ("rules", index, "match", "flow", position)
            if path not in lines:
                path = path[:-1]
            problems.append(Problem(_line_of(path, lines), f"rules[{index}].match.flow: unknown flow "
                                    f"`{name}` (known: {', '.join(sorted(known_flows))})"))
    return [p.at(origin) for p in sorted(problems, key=lambda p: p.line)]
