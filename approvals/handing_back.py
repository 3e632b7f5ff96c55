"""`approvals serve`'s runner: a SIGTERM hands the flow runs it is running back to Prefect.

Prefect's own Runner answers SIGTERM by cancelling every run it is running (a cancel intent on
its control channel, SIGTERM to the run's process, then the state Cancelled), so a restart of
`approvals serve` would kill every waiting gate. This one stops polling, sends each run's
process a plain SIGTERM (no cancel intent: the run crashes "aborted by a termination signal",
which keeps its approval requests open), waits for the processes to exit, and then sets each
run it stopped to AwaitingRetry. The next `approvals serve` picks them up like any scheduled
run; the re-run's gates find their requests by the idempotency key `{flow run id}:{gate}` and
wait on, so a click made meanwhile is read at once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio
from prefect.client.orchestration import get_client
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import TerminationSignal
from prefect.runner import Runner
from prefect.states import AwaitingRetry

log = logging.getLogger(__name__)

# A waiting gate stops within a second of its SIGTERM; one busy elsewhere gets this long before
# SIGKILL (its requests stay open either way: no hook runs on SIGKILL).
STOP_GRACE_SECONDS = 20.0
HANDED_BACK_MESSAGE = "handed back by approvals serve on shutdown; the next approvals serve runs it again"


class HandingBackRunner(Runner):
    """A Runner whose SIGTERM stops its runs to be run again instead of cancelling them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed_back: set[UUID] = set()

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        if not self.started or self.stopping or self._loop is None:
            sys.exit(0)
        self._logger.info("SIGTERM received: handing the running flow runs back to Prefect")
        self.stopping = True
        self.execute_in_background(self.hand_back)

    async def hand_back(self) -> None:
        """Stop polling, stop every run's process without a cancel, then let `start` return."""
        self.started = False
        self._scheduled_run_poller.stopping = True
        # A run the poller was starting as the signal came appears a moment later: look again
        # until no new one shows up.
        while fresh := self._process_manager.flow_run_ids() - self.handed_back:
            self.handed_back |= fresh
            async with anyio.create_task_group() as group:
                for run_id in fresh:
                    group.start_soon(self._stop_run, run_id)
        self._loops_task_group.cancel_scope.cancel()

    async def _stop_run(self, run_id: UUID) -> None:
        try:
            await self._process_manager.kill(run_id, grace_seconds=STOP_GRACE_SECONDS)
        except Exception:  # one run that cannot be stopped must not keep the others running
            self._logger.exception("could not stop the process of flow run %s", run_id)


async def reschedule(run_ids: set[UUID]) -> list[UUID]:
    """Set each stopped run to AwaitingRetry (due now), unless it ended on its own meanwhile
    (completed, failed or cancelled before the signal reached it): those keep their state."""
    rescheduled = []
    async with get_client() as client:
        for run_id in sorted(run_ids):
            try:
                state = (await client.read_flow_run(run_id)).state
                if state is not None and state.is_final() and not state.is_crashed():
                    continue
                await client.set_flow_run_state(
                    run_id, AwaitingRetry(scheduled_time=datetime.now(UTC), message=HANDED_BACK_MESSAGE),
                    force=True)
            except Exception:
                log.exception("could not hand flow run %s back to Prefect", run_id)
                continue
            rescheduled.append(run_id)
    return rescheduled


def serve_handing_back(deployments: list[RunnerDeployment], limit: int | None) -> list[UUID]:
    """What `prefect.serve` does, with the runner above; returns the runs handed back.

    Deployments are not paused on shutdown (they have no schedules to pause, and a run handed
    back must stay runnable for the next `approvals serve`)."""
    from prefect.flows import _display_serve_start_message

    runner = HandingBackRunner(pause_on_shutdown=False, limit=limit)
    for deployment in deployments:
        runner.add_deployment(deployment)
    _display_serve_start_message(*deployments)
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal) as e:
        log.info("%s received, shutting down", type(e).__name__)
    if not runner.handed_back:
        return []
    return asyncio.run(reschedule(runner.handed_back))
