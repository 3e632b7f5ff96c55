"""Resuming the flow run that suspended while it waited on a request.

    RunResumer      the port the composition root fills (Prefect's resume_flow_run); this
                    layer knows nothing of Prefect
    ResumeOutcome   what one resume attempt found
    ResumeState     what a request's state hash says of its suspended run, at Redis's time
    ResumePass      what one pass of the resumer has learnt of the orchestrator

Firing a resume (`fire_resume`, `resume_due`) is part of what follows a close: state/closing.py.

A gate that suspends its run first records, in one script with the decision check, which run
to resume (`resume_run` in the request's state) and on which Prefect server
(`resume_server`), and leaves a watch on the `resume` schedule. The script that decides or
closes the request makes the resume due in the same step, and the recorder fires it at once.
What fails stays on the schedule: a Prefect server that cannot be reached is tried again until
it answers; a run still running (the decision raced its suspend) is tried again for
RACE_WINDOW; a run that has ended is dropped. While the request is pending the watch looks at
the run every WATCH_EVERY: a suspended run cancelled in Prefect has no process to run its
hooks, so the watch closes its request.

A run the server does not know is not taken as gone at once: only the server the run
suspended on may say so, and only once it has said so for MISSING_FOR (a server restoring
a backup, a bot pointed at another server by mistake, must not cancel live requests).
All times are Redis's (the due times are written by its scripts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple, Protocol

log = logging.getLogger(__name__)

# A run found running after its decision is usually one whose suspend the decision overtook;
# its suspend completes within moments, so it is tried again this often, for this long.
RACE_RETRY = timedelta(seconds=1)
RACE_WINDOW = timedelta(minutes=5)
# A Prefect server that cannot be reached is tried again this often, for as long as it takes.
UNREACHABLE_RETRY = timedelta(seconds=5)
# How often a suspended run's state is read while its request is pending (reads only).
WATCH_EVERY = timedelta(seconds=30)
# How long the run's own server must keep saying "no such run" before it counts as gone.
MISSING_FOR = timedelta(minutes=5)
# The state name RunResumer.ended gives a run its server does not know.
MISSING = "Missing"
# One pass of the resumer thread stops calling the orchestrator after this long; what is
# left goes back on the schedule, due now, for the next pass.
PASS_BUDGET = timedelta(seconds=20)


def server_identity(api_url: str | None) -> str:
    """How a Prefect server is named next to the runs suspended on it: its API URL without a
    trailing slash. Flow runs and bots must name the server alike for a bot to declare one of
    its runs gone (a bot still resumes any run it finds)."""
    return (api_url or "").strip().rstrip("/")


class ResumeOutcome(StrEnum):
    RESUMED = "resumed"
    NOT_SUSPENDED = "not_suspended"  # running or scheduled: not (or no longer, or not yet) suspended
    GONE = "gone"  # ended: nothing to resume
    MISSING = "missing"  # the server does not know the run (see MISSING_FOR)


class RunResumer(Protocol):
    """Resumes suspended flow runs; raises when the orchestrator cannot be reached."""

    @property
    def server(self) -> str:
        """Which orchestrator this is (recorded with each suspend; its runs only)."""

    def resume(self, flow_run_id: str) -> ResumeOutcome:
        """Resume the run if it is suspended; say what was found."""

    def ended(self, flow_run_ids: Sequence[str]) -> dict[str, str]:
        """In one read: run id -> state name for each run that has ended for good or is being
        cancelled, MISSING for each the server does not know; runs still alive are left out."""


class ResumeState(NamedTuple):
    """A request's suspended run as its state hash says, and Redis's clock at that read."""

    pending: bool
    run: str | None
    due: datetime | None  # the resume owed since the decision; None: none owed
    server: str | None  # the orchestrator the run suspended on
    missing_since: datetime | None  # when its server first said it has no such run
    now: datetime


@dataclass
class ResumePass:
    """What one pass has learnt of the orchestrator, shared by the entries it fires."""

    ended: dict[str, str] | None = None  # the watched runs' ends, read once
    unreachable: bool = False  # after the first failure the rest wait, unasked
    started: float = field(default_factory=time.monotonic)
