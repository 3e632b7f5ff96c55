"""App Home: the user's pending approvals with buttons, and their recent decisions."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from ..deps import BotDeps
from ..home import publish_home


def handle_home_opened(event: dict[str, Any], deps: BotDeps) -> None:
    if event.get("tab", "home") != "home":
        return
    publish_home(deps, str(event["user"]))


def register(app: App, deps: BotDeps) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any]) -> None:
        handle_home_opened(event, deps)
