"""The seam through which `/approvals run` starts flows without `bot/` knowing Prefect."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from slack_approvals.core.errors import ApprovalsError
from slack_approvals.policy.routing import Settled


class LaunchError(ApprovalsError):
    """The flow name or its parameters were refused; the message is shown to the user."""


@dataclass(frozen=True)
class Launched:
    flow_run_id: str
    flow_name: str
    url: str | None = None
    # Set for a run of a deployment (a worker or `approvals serve` runs it); None for a run
    # in the launching process, which ends with that process.
    deployment: str | None = None
    run_name: str | None = None
    # Why the run may not start soon (a paused work pool, nothing polling), said with it.
    warning: str | None = None

    @property
    def where(self) -> str:
        """Where the run runs, as the CLI and the Slack reply say it."""
        if self.deployment is None:
            return "running in this process"
        return f"started deployment run {self.run_name or self.flow_run_id} of {self.deployment}"


class Launcher(Protocol):
    def flows(self) -> Mapping[str, str]:
        """Runnable flow names and one-line descriptions."""

    def check(self, flow: str, params: Mapping[str, str]) -> None:
        """Validate the parameters without starting anything; raise LaunchError if bad.

        Called before the slash command is acknowledged, so a typo is answered at once."""

    def launch(self, flow: str, params: Mapping[str, str], *, requested_by: str,
               channel: str) -> Launched:
        """Start the flow and return at once; raise LaunchError for bad input."""

    def explain(self, flow: str, params: Mapping[str, str], *, requested_by: str) -> Settled:
        """What the approval policy would decide for a run with these parameters (who is
        asked, how many, where; or auto-approve / deny); raise LaunchError for bad input."""

    def run_gone(self, flow_run_id: str) -> str | None:
        """The name of the flow run's state when it will no longer act on a decision (it has
        ended, or is being cancelled); None while it may still be waiting, and whenever
        Prefect cannot say quickly. Called after the click is acknowledged; must not raise."""
