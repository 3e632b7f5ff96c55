"""Slack-style API errors raised inside the sandbox and rendered as `ok: false` bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SlackError(Exception):
    """An error Slack would report as `{"ok": false, "error": code, ...}`."""

    def __init__(
        self,
        code: str,
        *,
        messages: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages or []
        self.extra = extra or {}

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.code}
        body.update(self.extra)
        if self.messages:
            # Slack lists schema problems twice: bare in `errors` and tagged in metadata.
            body["errors"] = list(self.messages)
            body["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in self.messages]}
        return body


def lookup(table: Mapping[K, V], key: K, code: str) -> V:
    """Slack answers an id it does not know with an error code of that id's kind."""
    try:
        return table[key]
    except KeyError:
        raise SlackError(code) from None
