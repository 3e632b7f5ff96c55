"""The policy in force when no policy file exists: today's behaviour, written as a policy.

Gates and `approvals request` name their own approvers, channel and timeouts, the settings
fill what they leave out, and payments keep their thresholds.
"""

from __future__ import annotations

from functools import cache

from .document import Policy, parse_policy

BUILTIN_ORIGIN = "built-in policy"

BUILTIN_TEXT = """\
# The built-in policy, in force when no policy file exists (APPROVALS_POLICY).
version: 1
rules:
  - name: small-payments
    match: {flow: payment-approval, params: {amount: "< 1000"}}
    auto_approve: amount below the 1,000 threshold
  - name: large-payments
    match: {flow: payment-approval, params: {amount: "> 10000"}}
    quorum: 2
"""


@cache
def builtin_policy() -> Policy:
    return parse_policy(BUILTIN_TEXT, BUILTIN_ORIGIN, builtin=True)
