"""The approval policy in force, from the file APPROVALS_POLICY names (or the built-in one).

    policy_source(settings) -> PolicySource     one per file and process, shared by the bot,
                                                the flows and the CLI
    PolicyFile                                  re-reads the file when its mtime (or size)
                                                changes, or after SIGHUP; a text that does not
                                                validate is refused with an error in the log and
                                                the policy in force stays (a typo is no outage)
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from slack_approvals.policy.builtin import builtin_policy
from slack_approvals.policy.document import Policy, parse_policy
from slack_approvals.policy.errors import PolicyInvalid
from slack_approvals.policy.opening import FixedPolicy, PolicySource

from .settings import Settings, SettingsError

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int]


def _stamp(path: Path) -> Stamp | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size, found.st_ino)


class PolicyFile:
    """A policy file, read at start (a bad one refuses to start) and whenever it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._reload_asked = False
        self._stamp = _stamp(path)
        try:
            self._policy = parse_policy(path.read_text(), str(path))
        except OSError as e:
            raise SettingsError(f"setting APPROVALS_POLICY: cannot read {path}: {e}") from e
        except PolicyInvalid as e:
            raise SettingsError(f"setting APPROVALS_POLICY: {e.lines()[0]} "
                                f"(`approvals policy check {path}` lists every problem)") from e
        log.info("approval policy %s (%s) in force", path, self._policy.hash)

    def ask_reload(self) -> None:
        """Read the file again on the next use, changed or not (SIGHUP)."""
        self._reload_asked = True

    def current(self) -> Policy:
        stamp = _stamp(self.path)
        if stamp != self._stamp or self._reload_asked:
            with self._lock:
                if stamp != self._stamp or self._reload_asked:
                    self._reload_asked = False
                    self._stamp = stamp
                    self._reload()
        return self._policy

    def _reload(self) -> None:
        try:
            policy = parse_policy(self.path.read_text(), str(self.path))
        except OSError as e:
            log.error("approval policy %s could not be read (%s); policy %s stays in force",
                      self.path, e, self._policy.hash)
            return
        except PolicyInvalid as e:
            log.error("approval policy %s refused, policy %s stays in force: %s", self.path,
                      self._policy.hash, "; ".join(e.lines()))
            return
        if policy.hash != self._policy.hash:
            log.info("approval policy %s reloaded: %s in force (was %s)", self.path, policy.hash,
                     self._policy.hash)
        self._policy = policy


_sources: dict[Path, PolicyFile] = {}
_sources_lock = threading.Lock()


def policy_source(settings: Settings) -> PolicySource:
    path = settings.policy_file()
    if path is None:
        return FixedPolicy(builtin_policy())
    key = path.resolve()
    with _sources_lock:
        if key not in _sources:
            _sources[key] = PolicyFile(path)
        return _sources[key]


def reload_on_sighup() -> None:
    """SIGHUP re-reads every policy file in use (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return

    def on_hup(signum: int, frame: FrameType | None) -> None:
        with _sources_lock:
            for source in _sources.values():
                source.ask_reload()

    signal.signal(signal.SIGHUP, on_hup)


def fallback_of(settings: Settings) -> dict[str, Any]:
    """What the settings decide when neither the policy nor the caller does."""
    return {"channel": settings.approvals_channel, "approvers": list(settings.approvals_default_approvers)}
