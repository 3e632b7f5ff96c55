"""Errors raised on purpose by the flows layer: its branch of the tree in core/errors.py.

    FlowsError                    base of everything below
    ├── ServicesNotInstalled      no services factory was installed before a gate ran
    ├── DecisionPending           a gate's wait slice ended without a decision; Prefect retries it
    ├── GatePending               a child flow's gate is past its hold window, still undecided:
                                  its parent suspends (the child must not complete)
    ├── ApprovalRejected          a gate with raise_on_reject=True was rejected or timed out
    ├── RedisOutage               Redis stayed unreachable longer than a waiting gate's budget
    ├── FlowRunCancelled          the gate's own flow run was cancelled; it does not pass
    ├── UnknownFlow               the registry has no flow by that name
    └── BadParameters             parameters for a registered flow failed validation
"""

from __future__ import annotations

from datetime import datetime

from slack_approvals.core.errors import ApprovalsError
from slack_approvals.state.models import Decision


class FlowsError(ApprovalsError):
    """Base class for errors the flows layer raises deliberately."""


class ServicesNotInstalled(FlowsError, RuntimeError):
    """Gates need Redis and Slack clients; the composition root installs a factory for them."""

    def __init__(self) -> None:
        super().__init__("no services factory installed: call flows.services.set_services_factory(...) "
                         "first (slack_approvals.approvals.launching.install_services does it from settings)")


class DecisionPending(FlowsError):
    """Not a failure: the only exception `wait_for_decision` retries on."""

    def __init__(self, request_id: str, deadline: datetime) -> None:
        super().__init__(f"request {request_id} is still pending (deadline {deadline:%Y-%m-%d %H:%M:%S} UTC)")
        self.request_id = request_id
        self.deadline = deadline


class GatePending(FlowsError):
    """Not a failure: a gate in a child flow waited out its hold window undecided. The child
    ends (not Completed, so a re-run parent runs it again and it finds its request), and the
    parent suspends until a decision resumes it (flows/departments.py)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request {request_id} is still pending past the hold window: the "
                         "parent flow run suspends until it is decided")
        self.request_id = request_id

    def __reduce__(self) -> tuple[type[GatePending], tuple[str]]:
        # Prefect persists a failed child's exception and raises it again in the parent.
        return (GatePending, (self.request_id,))


class ApprovalRejected(FlowsError):
    """The request ended without approval: rejected, timed out to reject, or cancelled."""

    def __init__(self, decision: Decision) -> None:
        who = f" by {decision.decided_by}" if decision.decided_by else ""
        why = f": {decision.reason}" if decision.reason else ""
        super().__init__(f"request {decision.request_id} {decision.status.value}{who}{why}")
        self.decision = decision


class RedisOutage(FlowsError):
    """A gate waited out Redis being unreachable for its whole budget; the run fails here."""

    def __init__(self, request_id: str, down_seconds: float, budget_seconds: float,
                 error: BaseException) -> None:
        super().__init__(
            f"Redis was unreachable for {down_seconds:.0f} s while request {request_id} waited for "
            f"its decision; a gate waits out {budget_seconds:g} s (redis_outage_seconds, "
            f"APPROVALS_REDIS_OUTAGE_SECONDS). Last error: {error}")
        self.request_id = request_id


class FlowRunCancelled(FlowsError):
    """The flow run was cancelled while its gate waited; whatever was decided, it stops here."""

    def __init__(self, request_id: str, flow_run_name: str) -> None:
        super().__init__(f"the flow run {flow_run_name} was cancelled while request {request_id} "
                         "waited; the gate does not pass")
        self.request_id = request_id


class UnknownFlow(FlowsError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"there is no flow {name!r}; flows: {', '.join(sorted(known))}")
        self.name = name


class BadParameters(FlowsError, ValueError):
    """The message is the parameter model's own validation message, one line per problem."""

    def __init__(self, flow: str, message: str) -> None:
        super().__init__(f"{flow}: {message}")
        self.flow = flow
