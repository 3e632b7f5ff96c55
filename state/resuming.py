"""Resuming the flow run that suspended while it waited on a request.

    RunResumer      the port the composition root fills (Prefect's resume_flow_run); this
                    layer knows nothing of Prefect
    ResumeOutcome   what one resume attempt found
    ResumeState     what a request's state hash says of its suspended run, at Redis's time
    fire_resume     one request's resume (or watch), now: whoever records a decision calls it
                    through the Closer
    resume_due      the resumer thread's pass: every claimed entry, time-boxed, the watched
                    runs read in one call

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
from typing import TYPE_CHECKING, NamedTuple, Protocol

from .keys import RESUME

if TYPE_CHECKING:
    from .closing import Closer

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


def _missing_long_enough(closer: Closer, request_id: str, found: ResumeState,
                         now: datetime) -> bool:
    """Whether the run's own server has said "no such run" for MISSING_FOR; only then is the
    run taken as gone. Another server's word is never enough."""
    resumer = closer.resumer
    assert resumer is not None
    if found.server != resumer.server:
        return False
    since = found.missing_since or closer.store.resume_missing(request_id, now)
    return now - since >= MISSING_FOR


def fire_resume(closer: Closer, request_id: str, now: datetime | None = None,
                seen: ResumePass | None = None, found: ResumeState | None = None) -> str:
    """Do what the request's `resume` entry asks now; returns a word for logs and tests:
    resumed, gone, retry, watched, closed, dropped. `seen` and `found` are what a pass
    already read (the orchestrator's answers, the request's state)."""
    resumer = closer.resumer
    if resumer is None:
        return "dropped"
    store = closer.store
    found = found or store.resume_state(request_id)
    if found is None or found.run is None:
        store.resume_later(request_id, None)
        return "dropped"
    now = now or found.now
    run_id = found.run
    seen = seen or ResumePass()
    if found.pending:
        ended: str | None = None
        answered = False
        if not seen.unreachable:
            try:
                ended = (seen.ended if seen.ended is not None
                         else resumer.ended([run_id])).get(run_id)
                answered = True
            except Exception as e:
                log.info("could not read flow run %s (request %s): %s", run_id, request_id, e)
                seen.unreachable = True
        if ended == MISSING and not _missing_long_enough(closer, request_id, found, now):
            ended = None
        elif answered and ended != MISSING and found.missing_since is not None:
            store.resume_found(request_id)
        if ended is None:
            store.resume_later(request_id, now + WATCH_EVERY)
            return "watched"
        log.warning("flow run %s of request %s is %s while suspended: closing the request",
                    run_id, request_id, ended)
        closer.cancel(request_id, None, f"the flow run {run_id} is {ended.lower()}", force=True)
        return "closed"
    if found.due is None:
        store.resume_later(request_id, None)  # resumed already
        return "dropped"
    if seen.unreachable:
        store.resume_later(request_id, now + UNREACHABLE_RETRY)
        return "retry"
    try:
        outcome = resumer.resume(run_id)
    except Exception as e:
        log.warning("could not resume flow run %s (request %s), trying again: %s", run_id,
                    request_id, e)
        seen.unreachable = True
        store.resume_later(request_id, now + UNREACHABLE_RETRY)
        return "retry"
    if outcome is ResumeOutcome.MISSING:
        if not _missing_long_enough(closer, request_id, found, now):
            store.resume_later(request_id, now + WATCH_EVERY)
            return "retry"
        log.info("flow run %s of request %s is unknown to its server for %s: nothing to resume",
                 run_id, request_id, MISSING_FOR)
        store.resumed(request_id)
        return "gone"
    if outcome is ResumeOutcome.NOT_SUSPENDED:
        if now - found.due < RACE_WINDOW:
            store.resume_later(request_id, now + RACE_RETRY)
            return "retry"
        log.info("flow run %s of request %s was not suspended for %s after the decision; "
                 "not resuming it", run_id, request_id, RACE_WINDOW)
        store.resumed(request_id)
        return "dropped"
    if outcome is ResumeOutcome.GONE:
        log.info("flow run %s of request %s has ended: nothing to resume", run_id, request_id)
    store.resumed(request_id)
    return outcome.value


def resume_due(closer: Closer, limit: int = 100,
               budget: timedelta = PASS_BUDGET) -> dict[str, str]:
    """One pass of the resumer thread: every due `resume` entry, claimed so one bot fires each.

    The runs being watched are read in one call; after the first failure to reach the
    orchestrator, and once `budget` is spent, the rest go back on the schedule unasked (a
    slow server costs one timeout per pass, not one per entry)."""
    done: dict[str, str] = {}
    resumer = closer.resumer
    if resumer is None:  # no orchestrator here: leave them to a bot that has one
        return done
    store = closer.store
    claimed = store.claim(RESUME, limit)
    if not claimed:
        return done
    seen = ResumePass()
    states = {request_id: store.resume_state(request_id) for request_id in claimed}
    watched = sorted({s.run for s in states.values() if s is not None and s.pending and s.run})
    if watched:
        try:
            seen.ended = resumer.ended(watched)
        except Exception as e:
            log.info("could not read the %d watched flow run(s): %s", len(watched), e)
            seen.unreachable = True
    deadline = seen.started + budget.total_seconds()
    for request_id in claimed:
        if time.monotonic() >= deadline:
            found = states[request_id]
            if found is not None:  # the next pass takes it first
                store.resume_later(request_id, found.now)
            done[request_id] = "later"
            continue
        try:
            done[request_id] = fire_resume(closer, request_id, seen=seen,
                                           found=states[request_id])
        except Exception:  # one request must not hold up the others; its lease brings it back
            log.exception("resuming the run of %s failed", request_id)
    return done
