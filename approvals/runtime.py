"""Wires settings into a running bot: store, Slack client, messenger, Bolt app, web app."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from slack_bolt import App
from starlette.applications import Starlette

from slack_approvals.bot.app import build_app
from slack_approvals.bot.client import make_client, make_lookup_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.launcher import Launcher
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.nudges import Nudger
from slack_approvals.bot.sweeper import Sweeper
from slack_approvals.bot.web import build_web_app
from slack_approvals.state.closing import Closer, DecisionListener

from .settings import Settings
from .wiring import sync_store


@dataclass
class BotRuntime:
    app: App
    deps: BotDeps
    web: Starlette
    sweeper: Sweeper


def build_messenger(settings: Settings, redis_url: str | None = None) -> Messenger:
    """One Redis connection pool and one Slack client, shared by the store and the messenger."""
    client = make_client(settings.bot_token(), settings.slack_api_url)
    return Messenger(client, sync_store(settings, redis_url))


def build_closer(settings: Settings, on_decision: DecisionListener | None = None,
                 redis_url: str | None = None) -> Closer:
    """The close path for a process without a bot (the CLI): same store, same messenger."""
    messenger = build_messenger(settings, redis_url)
    return Closer(messenger.store, messenger, on_decision=on_decision)


def nudger_for(closer: Closer) -> Nudger:
    """Reminders and escalation announcements through the closer's own messenger."""
    if not isinstance(closer.board, Messenger):
        raise TypeError("reminders need the Slack messenger as the closer's board")
    client = closer.board.client
    return Nudger(closer.store, closer.board, GroupResolver(make_lookup_client(client)), closer)


def build_runtime(settings: Settings, *, launcher: Launcher | None = None,
                  on_decision: DecisionListener | None = None,
                  redis_url: str | None = None, socket_mode: bool = False) -> BotRuntime:
    """`socket_mode`: Slack delivers over the app token's WebSocket and signs nothing, so no
    signing secret is needed; without one the HTTP route gets a random secret nobody knows
    and refuses every request (it is not served in Socket Mode anyway)."""
    messenger = build_messenger(settings, redis_url)
    deps = BotDeps(store=messenger.store, messenger=messenger,
                   groups=GroupResolver(make_lookup_client(messenger.client)), launcher=launcher,
                   on_decision=on_decision)
    secret = (secrets.token_hex(32) if socket_mode and settings.slack_signing_secret is None
              else settings.signing_secret())
    app = build_app(client=messenger.client, signing_secret=secret, deps=deps)
    return BotRuntime(app=app, deps=deps, web=build_web_app(app, deps, signing_secret=secret),
                      sweeper=Sweeper(deps, settings.approvals_sweep_seconds))
