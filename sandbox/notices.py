"""Notices: the lines Slack shows a person when the app failed them, until they dismiss one."""

from __future__ import annotations

from slack_approvals.sandbox.changes import Changes
from slack_approvals.sandbox.clock import Clock
from slack_approvals.sandbox.records import Notice


class Notices:
    def __init__(self, changes: Changes, clock: Clock) -> None:
        self._changes = changes
        self._clock = clock
        self._notices: list[Notice] = []

    def clear(self) -> None:
        with self._changes.lock:
            self._notices = []

    def add(self, user_id: str, text: str, channel_id: str | None = None) -> Notice:
        with self._changes.lock:
            notice = Notice(self._changes.next_serial(), user_id, channel_id, text, self._clock())
            self._notices.append(notice)
            self._changes.touch()
            return notice

    def shown_to(self, user_id: str) -> list[Notice]:
        with self._changes.lock:
            return [n for n in self._notices if n.user_id == user_id]

    def dismiss(self, notice_id: int) -> None:
        with self._changes.lock:
            self._notices = [n for n in self._notices if n.id != notice_id]
            self._changes.touch()
