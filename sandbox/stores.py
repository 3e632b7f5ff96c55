"""The base of the stores that hold what people see: channel messages, ephemerals and views."""

from __future__ import annotations

from abc import ABC, abstractmethod

from slack_approvals.sandbox.changes import Changes
from slack_approvals.sandbox.clock import Clock
from slack_approvals.sandbox.directory import Directory
from slack_approvals.sandbox.ids import IdMint


class ContentStore(ABC):
    """Each shapes Slack objects from the directory, mints ids and timestamps, and takes the one lock.

    A store's own state is set in `_empty`, so construction and `clear` cannot drift apart.
    """

    def __init__(self, changes: Changes, directory: Directory, mint: IdMint, clock: Clock) -> None:
        self._changes = changes
        self._directory = directory
        self._mint = mint
        self._clock = clock
        self._empty()

    def clear(self) -> None:
        with self._changes.lock:
            self._empty()

    @abstractmethod
    def _empty(self) -> None:
        """Sets the store's own state to empty."""
