"""Builds the Bolt app with every listener registered."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_sdk import WebClient

from .deps import BotDeps
from .ids import SLASH_COMMAND
from .listeners import actions, commands, events, views


def build_app(*, client: WebClient, signing_secret: str, deps: BotDeps,
              command_name: str = SLASH_COMMAND) -> App:
    """process_before_response: each listener records to Redis and then acks, so an ack
    means the vote is stored; the Slack calls that follow run on `deps.background`.
    (Bolt's default mode polls for the ack every 10 ms, which we would pay on every click.)"""
    app = App(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        logger=logging.getLogger("slack_approvals.bot.bolt"),
    )
    actions.register(app, deps)
    views.register(app, deps)
    commands.register(app, deps, command_name)
    events.register(app, deps)
    return app
