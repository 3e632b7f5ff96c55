"""The clients and defaults that gates and flows use, installed from outside.

    SlackBoard                              what flows need of Slack (a Protocol; the bot's
                                            Messenger is the one the composition root installs)
    set_services_factory(factory, config)   the composition root (approvals.launching) or a test
    services()       -> Services            built by the factory on first use, then shared
    flow_config()    -> FlowConfig          defaults for flow parameters: channel, approvers, ...
    services_installed(factory, config)     the same as a context manager that restores the old ones

Flows never read settings: whoever starts them installs a factory first. A flow run that
Prefect starts in a fresh process (a served deployment) has nobody to do that, so the one
environment variable APPROVALS_SERVICES_BOOTSTRAP may name a `module:function` that installs it.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from slack_approvals.policy.builtin import builtin_policy
from slack_approvals.policy.opening import FixedPolicy, Opener, PolicySource
from slack_approvals.state.closing import Closer, MessageBoard
from slack_approvals.state.store import ApprovalStore, AsyncApprovalStore

from .errors import ServicesNotInstalled
from .events import emit_decided


@dataclass(frozen=True)
class FlowConfig:
    """Defaults a flow uses when its parameters name no channel, approver or requester."""

    channel: str = "#approvals"
    approvers: tuple[str, ...] = ()
    requester: str | None = None
    # Each attempt of a waiting gate blocks this long on Redis before Prefect retries it.
    wait_slice_seconds: float = 10.0
    data_dir: Path = Path(".data")
    # A waiting gate rides out a Redis outage (restart, failover) this long, then fails its run.
    redis_outage_seconds: float = 600.0
    # A gate in a deployment run (not a subflow) waits this long in its process, then suspends
    # the run, which leaves its process until the decision resumes it.
    hold_seconds: float = 120.0

    def __post_init__(self) -> None:
        if not 0 < self.wait_slice_seconds <= 300:
            raise ValueError("wait_slice_seconds: between 0 and 300 seconds")
        if not 0 <= self.redis_outage_seconds <= 86400:
            raise ValueError("redis_outage_seconds: between 0 and 86400 seconds")
        if not 0 <= self.hold_seconds <= 86400:
            raise ValueError("hold_seconds: between 0 and 86400 seconds")


class SlackBoard(MessageBoard, Protocol):
    """A request's message (post, refresh) and messages of the flow's own (the roll-up)."""

    def post_message(self, channel: str, message: dict[str, Any]) -> tuple[str, str]:
        """Post; returns the channel id and the message ts."""

    def update_message(self, channel: str, ts: str, message: dict[str, Any]) -> None:
        """Replace the message's text and blocks."""


class Services:
    """A blocking store and the board for posting and closing; asyncio stores for waiting;
    the approval policy in force (the built-in one unless the composition root installs one)."""

    def __init__(self, store: ApprovalStore, board: SlackBoard,
                 open_async_store: Callable[[], AsyncApprovalStore],
                 policy: PolicySource | None = None) -> None:
        self.store = store
        self.board = board
        self._open_async_store = open_async_store
        # A decision the flow itself records (timeout, auto-approval) is reported the same way
        # as the bot reports a click: an `approval.decided` event.
        self.closer = Closer(store, board, on_decision=emit_decided)
        self.policy = policy or FixedPolicy(builtin_policy())

    @property
    def opener(self) -> Opener:
        """The one path that routes and opens a gate's request; the installed defaults
        (FlowConfig's channel and approvers) fill only what the policy and gate leave unset."""
        config = flow_config()
        return Opener(self.closer, self.policy,
                      {"channel": config.channel, "approvers": list(config.approvers)})

    @asynccontextmanager
    async def async_store(self) -> AsyncIterator[AsyncApprovalStore]:
        """A store on a fresh asyncio client, closed afterwards.

        asyncio clients belong to one event loop, and flows run on many (the CLI, the launcher's
        loop, tests); a client per wait attempt costs one connect per slice and never leaks.
        """
        store = self._open_async_store()
        try:
            yield store
        finally:
            await store.aclose()


ServicesFactory = Callable[[], Services]

BOOTSTRAP_ENV = "APPROVALS_SERVICES_BOOTSTRAP"

_lock = threading.Lock()
_factory: ServicesFactory | None = None
_config = FlowConfig()
_built: Services | None = None
_bootstrapped = False


def _bootstrap() -> None:
    """Once per process, before anything was installed: call APPROVALS_SERVICES_BOOTSTRAP."""
    global _bootstrapped
    with _lock:
        if _bootstrapped or _factory is not None:
            return
        _bootstrapped = True
    target = os.environ.get(BOOTSTRAP_ENV, "")
    if not target:
        return
    module, sep, name = target.partition(":")
    if not sep:
        raise ValueError(f"{BOOTSTRAP_ENV}={target!r}: expected module:function")
    install: Callable[[], None] = getattr(importlib.import_module(module), name)
    install()


def set_services_factory(factory: ServicesFactory | None, config: FlowConfig | None = None) -> None:
    """Install how to build the clients (lazily, once) and the parameter defaults.

    Installing None leaves the next use to APPROVALS_SERVICES_BOOTSTRAP, if set."""
    global _factory, _config, _built, _bootstrapped
    with _lock:
        _factory = factory
        _config = config or FlowConfig()
        _built = None
        _bootstrapped = False


def services() -> Services:
    global _built
    _bootstrap()
    with _lock:
        if _built is None:
            if _factory is None:
                raise ServicesNotInstalled()
            _built = _factory()
        return _built


def flow_config() -> FlowConfig:
    _bootstrap()
    return _config


@contextmanager
def services_installed(factory: ServicesFactory | None,
                       config: FlowConfig | None = None) -> Iterator[None]:
    global _factory, _config, _built, _bootstrapped
    with _lock:
        previous = (_factory, _config, _built, _bootstrapped)
    set_services_factory(factory, config)
    try:
        yield
    finally:
        with _lock:
            _factory, _config, _built, _bootstrapped = previous
