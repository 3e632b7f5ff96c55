"""Who is in which Slack user group, from usergroups.users.list, cached briefly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0


class GroupResolver:
    """Membership changes in Slack are rare and a minute of staleness is acceptable; a click
    must not wait on a Slack round trip every time."""

    def __init__(self, client: WebClient, ttl: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(group)
            if cached and now - cached[0] < self.ttl:
                return cached[1]
        try:
            response = self.client.usergroups_users_list(usergroup=group)
        except (SlackApiError, OSError) as e:
            # Fail closed and do not cache: the clicker is told they are not an approver, and
            # the next click asks Slack again.
            log.warning("could not resolve user group %s: %s", group, e)
            return frozenset()
        raw: list[str] = response.get("users") or []
        users = frozenset(str(u) for u in raw)
        with self._lock:
            self._cache[group] = (now, users)
        return users

    def groups_of(self, user: str, candidates: Iterable[str]) -> list[str]:
        """The candidate groups that `user` belongs to."""
        return [g for g in dict.fromkeys(candidates) if user in self.members(g)]
