"""Parameter building blocks shared by the flows' pydantic parameter models.

Defaults for channel, approvers and requester come from flows.services.flow_config(), which
the composition root fills from settings; lists also accept one comma-separated string, the
form `key=value` arguments arrive in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from slack_approvals.state.models import (
    MAX_APPROVERS,
    MAX_GROUPS,
    MAX_TIMEOUT,
    ChannelRef,
    GroupId,
    Outcome,
    UserId,
)

from .gates import Routing
from .services import flow_config


def split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


UserList = Annotated[list[UserId], BeforeValidator(split_commas), Field(max_length=MAX_APPROVERS)]
GroupList = Annotated[list[GroupId], BeforeValidator(split_commas), Field(max_length=MAX_GROUPS)]
TimeoutSeconds = Annotated[float, Field(gt=0, le=MAX_TIMEOUT.total_seconds())]
Title = Annotated[str, Field(min_length=1, max_length=200)]


def default_channel() -> str:
    return flow_config().channel


def default_approvers() -> list[str]:
    return list(flow_config().approvers)


def default_requester() -> str | None:
    return flow_config().requester


class FlowParams(BaseModel):
    """Base of every flow's parameters: unknown names are refused, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GateParams(FlowParams):
    """Who is asked, where, and how long they have."""

    channel: ChannelRef = Field(default_factory=default_channel)
    approvers: UserList = Field(default_factory=default_approvers)
    approver_groups: GroupList = []
    requester: UserId | None = Field(default_factory=default_requester)
    timeout_seconds: TimeoutSeconds = 24 * 3600.0
    timeout_outcome: Outcome = Outcome.REJECT

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.timeout_seconds)

    def routing(self) -> Routing:
        """These parameters as a gate's routing keywords: `approval_gate(..., **p.routing())`."""
        return Routing(approvers=self.approvers, approver_groups=self.approver_groups,
                       channel=self.channel, timeout=self.timeout,
                       timeout_outcome=self.timeout_outcome, requester=self.requester)

    def check_quorum(self, quorum: int, what: str = "quorum") -> None:
        """The rule RequestSpec applies, checked before the flow starts rather than at its gate."""
        if self.approvers and not self.approver_groups and quorum > len(self.approvers):
            raise ValueError(f"{what}: {quorum} approvals needed but only "
                             f"{len(self.approvers)} approvers named")


class QuorumGateParams(GateParams):
    quorum: Annotated[int, Field(ge=1, le=MAX_APPROVERS)] = 1

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Self:
        self.check_quorum(self.quorum)
        return self
