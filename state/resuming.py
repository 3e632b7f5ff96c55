"""Resuming the flow run that suspended while it waited on a request.

    RunResumer      the port the composition root fills (Prefect's resume_flow_run); this
                    layer knows nothing of Prefect
    ResumeOutcome   what one resume attempt found
    fire_resume     one request's resume (or watch), now: whoever records a decision calls it
                    through the Closer; the sweeper calls it for every claimed entry

A gate that suspends its run first records, in one script with the decision check, which run
to resume (`resume_run` in the request's state) and leaves a watch on the `resume` schedule.
The script that decides or closes the request makes the resume due in the same step, and the
recorder fires it at once. What fails stays on the schedule: a Prefect server that cannot be
reached is tried again until it answers; a run still running (the decision raced its
suspend) is tried again for RACE_WINDOW; a run that has ended or vanished is dropped. While
the request is pending the watch looks at the run every WATCH_EVERY: a suspended run
cancelled in Prefect has no process to run its hooks, so the watch closes its request.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

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


class ResumeOutcome(StrEnum):
    RESUMED = "resumed"
    NOT_SUSPENDED = "not_suspended"  # running or scheduled: not (or no longer, or not yet) suspended
    GONE = "gone"  # ended, or no such run: nothing to resume


class RunResumer(Protocol):
    """Resumes suspended flow runs; raises when the orchestrator cannot be reached."""

    def resume(self, flow_run_id: str) -> ResumeOutcome:
        """Resume the run if it is suspended; say what was found."""

    def ended(self, flow_run_id: str) -> str | None:
        """The run's state name when it has ended or is being cancelled, else None."""


def fire_resume(closer: Closer, request_id: str, now: datetime | None = None) -> str:
    """Do what the request's `resume` entry asks now; returns a word for logs and tests:
    resumed, gone, retry, watched, closed, dropped."""
    resumer = closer.resumer
    if resumer is None:
        return "dropped"
    store = closer.store
    now = now or datetime.now(UTC)
    found = store.resume_state(request_id)
    if found is None or found[1] is None:
        store.resume_later(request_id, None)
        return "dropped"
    pending, run_id, due = found
    assert run_id is not None
    if pending:
        try:
            ended = resumer.ended(run_id)
        except Exception as e:
            log.info("could not read flow run %s (request %s): %s", run_id, request_id, e)
            ended = None
        if ended is None:
            store.resume_later(request_id, now + WATCH_EVERY)
            return "watched"
        log.warning("flow run %s of request %s is %s while suspended: closing the request",
                    run_id, request_id, ended)
        closer.cancel(request_id, None, f"the flow run {run_id} is {ended.lower()}", force=True)
        return "closed"
    if due is None:
        store.resume_later(request_id, None)  # resumed already
        return "dropped"
    try:
        outcome = resumer.resume(run_id)
    except Exception as e:
        log.warning("could not resume flow run %s (request %s), trying again: %s", run_id,
                    request_id, e)
        store.resume_later(request_id, now + UNREACHABLE_RETRY)
        return "retry"
    if outcome is ResumeOutcome.NOT_SUSPENDED:
        if now - due < RACE_WINDOW:
            store.resume_later(request_id, now + RACE_RETRY)
            return "retry"
        log.info("flow run %s of request %s was not suspended for %s after the decision; "
                 "not resuming it", run_id, request_id, RACE_WINDOW)
        store.resumed(request_id)
        return "dropped"
    if outcome is ResumeOutcome.GONE:
        log.info("flow run %s of request %s has ended or is gone: nothing to resume", run_id,
                 request_id)
    store.resumed(request_id)
    return outcome.value


def resume_due(closer: Closer, limit: int = 100) -> dict[str, str]:
    """The sweeper's share: every due `resume` entry, claimed so one bot fires each."""
    done: dict[str, str] = {}
    if closer.resumer is None:  # no orchestrator here: leave them to a bot that has one
        return done
    for request_id in closer.store.claim(RESUME, limit):
        try:
            done[request_id] = fire_resume(closer, request_id)
        except Exception:  # one request must not hold up the others; its lease brings it back
            log.exception("resuming the run of %s failed", request_id)
    return done
