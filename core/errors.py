"""The one tree of errors the project raises on purpose; each layer defines its own branch.

    ApprovalsError                      core.errors: base of everything below
    ├── BadInput                        core.errors: typed text (key=value, a duration) is malformed
    ├── StoreError                      state.errors: the approval store refused or failed
    │   ├── InvalidRequest              a request or argument breaks a rule; nothing was written
    │   ├── RequestNotFound             no request with that id (or it has expired)
    │   ├── CorruptRecord               Redis holds something the store did not write
    │   └── RedisSetupError             no server could be reached or started
    ├── PolicyError                     policy.errors: the approval policy
    │   ├── PolicyInvalid               the document does not validate (each problem with its line)
    │   └── ApproversLocked             `lock: true`, yet a caller named approvers
    ├── CommandError                    bot.slash: `/approvals` text could not be read
    ├── LaunchError                     bot.launcher: a flow name or its parameters were refused
    ├── GroupLookupFailed               bot.groups: Slack could not list a user group just now
    ├── FlowsError                      flows.errors
    │   ├── ServicesNotInstalled        no services were installed before a gate ran
    │   ├── DecisionPending             a wait slice ended without a decision; Prefect retries it
    │   ├── ApprovalRejected            a gate with raise_on_reject=True was not approved
    │   ├── RedisOutage                 Redis stayed unreachable past the outage budget
    │   ├── FlowRunCancelled            the gate's own flow run was cancelled: it does not pass
    │   ├── UnknownFlow                 the registry has no flow by that name
    │   └── BadParameters               parameters for a registered flow failed validation
    └── SettingsError                   approvals.settings: a setting is missing or malformed

Catch a branch where you can act on it; `ApprovalsError` only at the edge that turns errors
into one line for a person (the CLI, a Slack reply).
"""

from __future__ import annotations


class ApprovalsError(Exception):
    """Base class for every error the project raises deliberately."""


class BadInput(ApprovalsError, ValueError):
    """Text a person typed could not be read; the message says what was expected."""
