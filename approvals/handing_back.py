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
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import TerminationSignal
from prefect.runner import Runner
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.states import AwaitingRetry

log = logging.getLogger(__name__)

# A waiting gate stops within a second of its SIGTERM; one busy elsewhere gets this long before
# SIGKILL (its requests stay open either way: no hook runs on SIGKILL).
STOP_GRACE_SECONDS = 20.0
HANDED_BACK_MESSAGE = "handed back on shutdown of its worker or approvals serve; the next one runs it again"


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


# The only states a stopped run may be handed back from: still Running or Pending (the
# process died before its engine or its worker recorded anything) or Crashed (the termination
# signal we sent). Cancelling, Paused/Suspended, Scheduled (AwaitingRetry included) and the
# final states say that somebody else decided the run's fate meanwhile: a cancel must not come
# back, and a suspended run is resumed by its decision, never re-run.
HAND_BACK_FROM = frozenset({StateType.RUNNING, StateType.PENDING, StateType.CRASHED})
# Each Prefect call of a hand-back is bounded (no client retries): a stop must end within the
# unit's TimeoutStopSec even when the Prefect server hangs.
HAND_BACK_TIMEOUT_SECONDS = 5.0


async def _reschedule_one(client: PrefectClient, run_id: UUID) -> bool:
    state = (await client.read_flow_run(run_id)).state
    if state is not None and state.type not in HAND_BACK_FROM:
        log.info("flow run %s is %s: left as it is, not handed back", run_id, state.name)
        return False
    await client.set_flow_run_state(
        run_id, AwaitingRetry(scheduled_time=datetime.now(UTC), message=HANDED_BACK_MESSAGE),
        force=True)
    return True


async def reschedule(run_ids: set[UUID]) -> list[UUID]:
    """Set each stopped run to AwaitingRetry (due now) if it is Running, Pending or Crashed;
    a run that ended, is being cancelled or was suspended meanwhile keeps its state. All runs
    at once, each call bounded; a run that could not be handed back is logged by id."""
    ids = sorted(run_ids)
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
        async with get_client(httpx_settings={"timeout": HAND_BACK_TIMEOUT_SECONDS}) as client:
            results = await asyncio.gather(*(_reschedule_one(client, run_id) for run_id in ids),
                                           return_exceptions=True)
    rescheduled = []
    for run_id, result in zip(ids, results, strict=True):
        if isinstance(result, BaseException):
            log.error("could not hand flow run %s back to Prefect (%s: %s): it stays as it is; "
                      "start it again if it does not end on its own", run_id,
                      type(result).__name__, result)
        elif result:
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
