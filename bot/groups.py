"""Who is in which Slack user group, from usergroups.users.list, cached briefly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from slack_approvals.core.errors import ApprovalsError

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
# Slack's answers that settle the question; any other error leaves membership unknown.
NO_SUCH_GROUP = frozenset({"no_such_subteam", "subteam_not_found"})


class GroupLookupFailed(ApprovalsError):
    """Slack could not say who is in a user group just now; asking again later may work."""

    def __init__(self, groups: Iterable[str]) -> None:
        self.groups = list(groups)
        super().__init__(f"could not look up user group(s) {', '.join(self.groups)} in Slack")


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
        except SlackApiError as e:
            if e.response.get("error") in NO_SUCH_GROUP:
                # A definite answer: nobody is a member of a group that does not exist.
                log.warning("user group %s does not exist", group)
                return frozenset()
            log.warning("could not resolve user group %s: %s", group, e.response.get("error"))
            raise GroupLookupFailed([group]) from e
        except OSError as e:
            # Fail closed and do not cache: nobody counts as a member, the caller says the
            # lookup failed, and the next click asks Slack again.
            log.warning("could not resolve user group %s: %s", group, e)
            raise GroupLookupFailed([group]) from e
        raw: list[str] = response.get("users") or []
        users = frozenset(str(u) for u in raw)
        with self._lock:
            self._cache[group] = (now, users)
        return users

    def membership(self, user: str, candidates: Iterable[str]) -> tuple[list[str], list[str]]:
        """The candidate groups `user` belongs to, and those Slack could not list just now."""
        found: list[str] = []
        failed: list[str] = []
        for group in dict.fromkeys(candidates):
            try:
                if user in self.members(group):
                    found.append(group)
            except GroupLookupFailed:
                failed.append(group)
        return found, failed

    def groups_of(self, user: str, candidates: Iterable[str]) -> list[str]:
        """The candidate groups that `user` belongs to.

        Raises GroupLookupFailed when no membership was found and a lookup failed: the answer
        "not a member" would then be a guess, and the user should hear that Slack failed."""
        found, failed = self.membership(user, candidates)
        if failed and not found:
            raise GroupLookupFailed(failed)
        return found
