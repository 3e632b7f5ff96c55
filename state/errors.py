"""Errors raised by the approval store: its branch of the tree drawn in core/errors.py.

    StoreError                    base of everything the store raises on purpose
    ├── InvalidRequest            a request or argument breaks a rule; nothing was written
    ├── RequestNotFound           no request with that id (or it has expired)
    ├── CorruptRecord             Redis holds something the store did not write
    └── RedisSetupError           no server could be reached or started
"""

from __future__ import annotations

from slack_approvals.core.errors import ApprovalsError


class StoreError(ApprovalsError):
    """Base class for errors the store raises deliberately."""


class InvalidRequest(StoreError, ValueError):
    """An input broke a rule; the message names the field and the rule."""


class RequestNotFound(StoreError, LookupError):
    """The id is well formed but names no stored request."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"no approval request with id {request_id!r}")
        self.request_id = request_id


class CorruptRecord(StoreError):
    """Stored data failed validation: refuse to act on it rather than guess."""


class RedisSetupError(StoreError):
    """Redis could not be reached, parsed from its URL, or started."""
