"""A gate names reminders, escalation tiers and business hours; the request carries them."""

from __future__ import annotations

from datetime import timedelta

from prefect import flow

from slack_approvals.flows.gates import approval_gate
from slack_approvals.state import Decision, Status

from .support import MAYA, FlowEnv, run


@flow(name="nudged-step")
async def nudged_step() -> Decision:
    return await approval_gate(
        "nudged", "Nudged step", remind_every=timedelta(hours=1), remind_limit=2,
        escalate=[{"after": timedelta(hours=2), "to": ["U02FRANK", "S01FINANCE"], "quorum": 1}],
        business_hours={"days": "Mon-Fri", "from": "08:00", "to": "17:00", "tz": "UTC"})


def test_the_gate_asks_for_reminders_and_escalation(env: FlowEnv) -> None:
    env.approvers.on("Nudged step", MAYA)
    decision = run(nudged_step())
    assert decision.status is Status.APPROVED
    spec = env.store.get(decision.request_id).spec
    assert (spec.remind_every, spec.remind_limit) == (timedelta(hours=1), 2)
    assert spec.escalate[0].to == ["U02FRANK", "S01FINANCE"] and spec.escalate[0].quorum == 1
    assert spec.business_hours is not None and spec.business_hours.tz == "UTC"
    # Decided: nothing is left on the schedule.
    keys = env.store.plans.keys
    assert env.store.client.zscore(keys.schedule("remind"), decision.request_id) is None
    assert env.store.client.zscore(keys.schedule("escalate"), decision.request_id) is None
