"""The demo's flows: a quarterly review by three departments and a production deploy, at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from slack_approvals.flows.departments import DepartmentReviewParams, DepartmentSpec, department_review
from slack_approvals.flows.operations import DeployParams, deploy_approval

from .demo import DemoStack

REQUESTER = "U06REQ"


def review_params(timeout: timedelta) -> DepartmentReviewParams:
    """Who signs off where, and how long they have (`timeout`), is the demo's approval policy
    (demo_policy.approval_policy_text); the flows say only what is asked."""
    return DepartmentReviewParams(
        period="2025-Q4", requester=REQUESTER,
        departments=[DepartmentSpec(name="Finance"), DepartmentSpec(name="Engineering"),
                     DepartmentSpec(name="Sales")],
    )


def deploy_params(timeout: timedelta) -> DeployParams:
    return DeployParams(service="checkout", environment="production", version="2.4.0",
                        notes="Adds Apple Pay; migration 0042 is backwards compatible.",
                        requester=REQUESTER)


async def demo_scenario(stack: DemoStack, timeout: timedelta) -> dict[str, Any]:
    review, deploy = await asyncio.gather(department_review(review_params(timeout)),
                                          deploy_approval(deploy_params(timeout)))
    return {
        "department-review": (f"approved: {', '.join(review.approved) or '-'}; "
                              f"rejected: {', '.join(review.rejected) or '-'}; "
                              f"timed out: {', '.join(review.timed_out) or '-'}"),
        "deploy-approval": (f"{deploy.service} {deploy.version} to {deploy.environment}: "
                            f"{deploy.gate.status.value}"
                            + (" and deployed" if deploy.deployed else ", not deployed")),
    }
