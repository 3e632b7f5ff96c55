"""Parameter building blocks shared by the flows' pydantic parameter models.

A flow's parameters say what is asked (an amount, a version, records), never who approves,
how many, where or for how long: the approval policy decides that (policy/). The requester is
who asks; `/approvals run` sets it to the Slack user, otherwise it comes from
flows.services.flow_config(). Lists also accept one comma-separated string, the form
`key=value` arguments arrive in.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from slack_approvals.state.models import UserId

from .services import flow_config


def split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


Title = Annotated[str, Field(min_length=1, max_length=200)]


def default_requester() -> str | None:
    return flow_config().requester


class FlowParams(BaseModel):
    """Base of every flow's parameters: unknown names are refused, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def matched(self) -> dict[str, Any]:
        """What the approval policy's `params:` conditions see: every parameter, defaults
        applied, except who asks (the policy matches that as `requester`)."""
        return self.model_dump(exclude={"requester"})


class RequestedParams(FlowParams):
    """A flow whose gates name who asks: the requester may not approve their own request."""

    requester: UserId | None = Field(default_factory=default_requester)
