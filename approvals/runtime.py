"""Wires settings into a running bot: store, Slack client, messenger, Bolt app, web app."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from slack_bolt import App
from starlette.applications import Starlette

from slack_approvals.bot.app import build_app
from slack_approvals.bot.approval_page import ApprovalPages
from slack_approvals.bot.client import SlackErrorHook, make_client, make_lookup_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.launcher import Launcher
from slack_approvals.bot.mailer import Directory, Mailer, SlackDirectory, SmtpTransport
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.metrics import PENDING_READ_TIMEOUT_SECONDS, BotMetrics, pending_reader
from slack_approvals.bot.nudges import Nudger
from slack_approvals.bot.sweeper import Sweeper
from slack_approvals.bot.web import build_web_app
from slack_approvals.state.closing import Closer, DecisionListener
from slack_approvals.state.connection import connect
from slack_approvals.state.keys import RESUME

from .resuming import default_resumer
from .settings import Settings
from .wiring import resolve_redis_url, sync_store


@dataclass
class BotRuntime:
    app: App
    deps: BotDeps
    web: Starlette
    sweeper: Sweeper
    pages: ApprovalPages


def build_messenger(settings: Settings, redis_url: str | None = None,
                    on_slack_error: SlackErrorHook | None = None) -> Messenger:
    """One Redis connection pool and one Slack client, shared by the store and the messenger."""
    client = make_client(settings.bot_token(), settings.slack_api_url, on_error=on_slack_error)
    return Messenger(client, sync_store(settings, redis_url))


def build_closer(settings: Settings, on_decision: DecisionListener | None = None,
                 redis_url: str | None = None) -> Closer:
    """The close path for a process without a bot (the CLI): same store, same messenger."""
    messenger = build_messenger(settings, redis_url)
    # What the CLI decides resumes the run that suspended on it (PREFECT_API_URL set).
    return Closer(messenger.store, messenger, on_decision=on_decision, resumer=default_resumer())


def nudger_for(closer: Closer) -> Nudger:
    """Reminders and escalation announcements through the closer's own messenger."""
    if not isinstance(closer.board, Messenger):
        raise TypeError("reminders need the Slack messenger as the closer's board")
    client = closer.board.client
    return Nudger(closer.store, closer.board, GroupResolver(make_lookup_client(client)), closer)


def build_runtime(settings: Settings, *, launcher: Launcher | None = None,
                  on_decision: DecisionListener | None = None,
                  redis_url: str | None = None, socket_mode: bool = False,
                  registry: CollectorRegistry | None = None) -> BotRuntime:
    """`socket_mode`: Slack delivers over the app token's WebSocket and signs nothing, so no
    signing secret is needed; without one the HTTP route gets a random secret nobody knows
    and refuses every request (it is not served in Socket Mode anyway).
    `registry`: where the bot's metrics go (a private one when not given)."""
    metrics = BotMetrics(registry if registry is not None else CollectorRegistry())
    redis_url = redis_url or resolve_redis_url(settings)
    messenger = build_messenger(settings, redis_url, on_slack_error=metrics.slack_error)
    # The scrape reads on a client of its own, with a short timeout, so a slow Redis cannot
    # hold a scrape for the store's full command timeout.
    scrape_client = connect(redis_url, socket_timeout=PENDING_READ_TIMEOUT_SECONDS)
    keys = messenger.store.plans.keys
    metrics.watch_pending(pending_reader(scrape_client, keys.pending_index()))
    metrics.watch_suspended(pending_reader(scrape_client, keys.schedule(RESUME)))
    deps = BotDeps(store=messenger.store, messenger=messenger,
                   groups=GroupResolver(make_lookup_client(messenger.client)), launcher=launcher,
                   on_decision=on_decision, resumer=default_resumer(), metrics=metrics)
    secret = (secrets.token_hex(32) if socket_mode and settings.slack_signing_secret is None
              else settings.signing_secret())
    app = build_app(client=messenger.client, signing_secret=secret, deps=deps)
    directory = SlackDirectory(make_lookup_client(messenger.client))
    # Secure cookies need HTTPS; a plain-HTTP public URL (a local try-out) must still work.
    pages = ApprovalPages(deps, name_of=directory.name_of,
                          secure_cookie=(settings.approvals_public_url or "").startswith("https:"))
    return BotRuntime(app=app, deps=deps,
                      web=build_web_app(app, deps, signing_secret=secret, pages=pages),
                      sweeper=Sweeper(deps, settings.approvals_sweep_seconds,
                                      # The mailer's lookups may wait out a rate limit.
                                      mailer=build_mailer(settings, deps,
                                                          SlackDirectory(messenger.client))),
                      pages=pages)


def build_mailer(settings: Settings, deps: BotDeps, directory: Directory) -> Mailer | None:
    """The bot alone sends mail (the SMTP credentials stay in its process); None when
    APPROVALS_SMTP_URL is unset."""
    mail = settings.mail_settings()
    if mail is None:
        return None
    target, sender, public_url = mail
    return Mailer(deps.store, SmtpTransport(target), sender, public_url, directory)
