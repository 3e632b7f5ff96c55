"""The flows that can be started by name (`approvals run`, `/approvals run`, deployments).

    REGISTRY[name] -> RegisteredFlow(name, flow, params model, one-line description,
                                     caller_params, gates)
    parse_params(name, {"key": "value"})   validated model, or UnknownFlow / BadParameters
    parse_pairs(["key=value", ...])        the command-line form into a mapping

Callers (`approvals run`, `/approvals run`) may set a flow's business parameters only: each
flow lists them in `caller_params`, and any other name is refused naming it (who approves, how
many, where and for how long is the approval policy's). Values are strings converted by
pydantic (`amount=12.50`); lists take comma-separated values (`departments=finance,sales`).
Nothing runs unless the model accepts every parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect import Flow
from pydantic import BaseModel, ValidationError

from slack_approvals.core.errors import BadInput
from slack_approvals.core.keyvalues import parse_key_values
from slack_approvals.state.models import CHANNEL_PATTERN, GROUP_ID_PATTERN, USER_ID_PATTERN

from .departments import DepartmentReviewParams, department_review
from .errors import BadParameters, UnknownFlow
from .etl import EtlParams, etl_pipeline
from .examples import (
    MultiStepParams,
    PaymentParams,
    SimpleApprovalParams,
    multi_step_approval,
    payment_approval,
    simple_approval,
)
from .operations import (
    DESTRUCTIVE_QUORUM,
    DeployParams,
    DestructiveParams,
    deploy_approval,
    destructive_operation,
)
from .params import FlowParams, RequestedParams

# Every registered flow is served under this deployment name: `<flow name>/slack-approvals`.
DEPLOYMENT_NAME = "slack-approvals"


@dataclass(frozen=True)
class RegisteredFlow:
    name: str
    flow: Flow[..., Any]
    params: type[FlowParams]
    description: str
    caller_params: tuple[str, ...] = ()  # what a caller may set: business parameters only
    gates: tuple[str, ...] = ()  # its gates' names, as the approval policy matches them
    # Routing keys its gates name themselves (the policy's rules still win), so that
    # `approvals policy explain` settles the same draft the gate opens.
    gate_options: Mapping[str, Any] = field(default_factory=dict)

    def check_caller_params(self, values: Mapping[str, object]) -> None:
        """Refuse, by name, every parameter a caller may not set (an allow-list)."""
        refused = sorted(set(values) - set(self.caller_params))
        if not refused:
            return
        names = ", ".join(f"`{name}`" for name in refused)
        routing = {"approvers", "approver_groups", "quorum", "channel", "timeout", "timeout_seconds",
                   "timeout_outcome", "allow_self_approval", "requester", "auto_approve_below",
                   "quorum_above", "manager_approvers", "finance_approvers", "finance_groups",
                   "problem_threshold"}
        why = ("who approves, how many, where and for how long is decided by the approval "
               f"policy (`approvals policy explain {self.name}`)" if set(refused) & routing
               else "no such parameter")
        allowed = ", ".join(self.caller_params) or "none"
        raise BadParameters(self.name, f"{names} cannot be set: {why}. Parameters you can set: "
                                       f"{allowed}.")

    def parse(self, values: Mapping[str, object]) -> FlowParams:
        try:
            return self.params.model_validate(dict(values))
        except ValidationError as e:
            raise BadParameters(self.name, validation_message(e, self.params)) from e

    def parse_caller(self, values: Mapping[str, object], requester: str | None = None) -> FlowParams:
        """A caller's parameters: the allow-list first, then the model; `requester` is who
        asked (set by the launcher, never by the caller)."""
        self.check_caller_params(values)
        values = dict(values)
        if requester is not None and issubclass(self.params, RequestedParams):
            values["requester"] = requester
        return self.parse(values)

    def parameters(self, params: FlowParams) -> dict[str, Any]:
        """The flow run's parameters (JSON-ready), as Prefect stores and validates them."""
        return {"params": params.model_dump(mode="json")}


# What a value of each shared id pattern looks like, said to people instead of the regex.
PATTERN_WORDS = {
    USER_ID_PATTERN: "must be a Slack user id like U012AB3CD",
    GROUP_ID_PATTERN: "must be a Slack user-group id like S012AB3CD",
    CHANNEL_PATTERN: "must be a channel id (C0123ABC) or name (#approvals)",
}


def validation_message(error: ValidationError, model: type[BaseModel] | None = None) -> str:
    """`field: what is wrong (got ...)` for each problem, joined with `; `; a value of the
    wrong form is described (with the field's default as an example), never as a regex."""
    parts = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not problem["loc"]:
            parts.append(message)  # a rule across fields; its message names them
            continue
        where = ".".join(str(p) for p in problem["loc"])
        if problem["type"] == "string_pattern_mismatch":
            message = _form_message(str((problem.get("ctx") or {}).get("pattern", "")),
                                    str(problem["loc"][0]), model)
        if problem["type"] not in ("missing", "extra_forbidden"):
            message += f" (got {problem['input']!r})"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _form_message(pattern: str, field: str, model: type[BaseModel] | None) -> str:
    if pattern in PATTERN_WORDS:
        return PATTERN_WORDS[pattern]
    info = model.model_fields.get(field) if model is not None else None
    example = info.default if info is not None else None
    if isinstance(example, str) and example:
        return f"must look like {example!r}"
    return "is not in the form this parameter takes"


def _registered(flow: Flow[..., Any], params: type[FlowParams], caller_params: tuple[str, ...],
                gates: tuple[str, ...], gate_options: Mapping[str, Any] | None = None) -> RegisteredFlow:
    """Name and description are the flow's own, so the registry cannot drift from them."""
    unknown = set(caller_params) - set(params.model_fields)
    assert not unknown, f"{flow.name}: caller_params names no parameter: {unknown}"
    return RegisteredFlow(flow.name, flow, params, flow.description or "", caller_params, gates,
                          dict(gate_options or {}))


REGISTRY: Mapping[str, RegisteredFlow] = {
    entry.name: entry for entry in [
        _registered(simple_approval, SimpleApprovalParams, ("title", "summary"), ("approval",)),
        _registered(payment_approval, PaymentParams, ("amount", "currency", "payee", "reference"),
                    ("payment",)),
        _registered(multi_step_approval, MultiStepParams, ("title", "summary"),
                    ("manager", "finance")),
        _registered(deploy_approval, DeployParams, ("service", "environment", "version", "notes"),
                    ("deploy",)),
        _registered(destructive_operation, DestructiveParams, ("operation", "target", "reason"),
                    ("destructive",), {"quorum": DESTRUCTIVE_QUORUM}),
        _registered(etl_pipeline, EtlParams, ("rows", "error_rate", "seed", "database"),
                    ("store-despite-problems",)),
        _registered(department_review, DepartmentReviewParams, ("period", "departments"),
                    ("department:finance", "department:engineering", "department:sales", "rollup")),
    ]
}


def get_flow(name: str) -> RegisteredFlow:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownFlow(name, list(REGISTRY)) from None


def descriptions() -> dict[str, str]:
    return {name: entry.description for name, entry in REGISTRY.items()}


def parse_params(name: str, values: Mapping[str, object],
                 requester: str | None = None) -> tuple[RegisteredFlow, FlowParams]:
    """A caller's parameters for a flow (allow-list, then the model)."""
    entry = get_flow(name)
    return entry, entry.parse_caller(values, requester)


def parse_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """`key=value` strings into a mapping, by the same rule as `/approvals run`."""
    try:
        return parse_key_values(pairs)
    except BadInput as e:
        raise BadParameters("parameters", str(e)) from e
