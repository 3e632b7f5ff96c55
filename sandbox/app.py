"""Assembles the sandbox's Starlette application: Web API, Socket Mode, response URLs, UI, Inbox, page."""

from __future__ import annotations

import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from slack_approvals.sandbox.api_routes import web_api_routes
from slack_approvals.sandbox.driver import Driver
from slack_approvals.sandbox.faults import FaultInjector
from slack_approvals.sandbox.mail_routes import mail_routes
from slack_approvals.sandbox.socket_mode import socket_mode_routes
from slack_approvals.sandbox.ui import ui_routes

STATIC_DIR = Path(__file__).parent / "static"


def create_app(driver: Driver, faults: FaultInjector, closing: threading.Event) -> Starlette:
    """`closing` lets the server end open event streams when it shuts down."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", index, methods=["GET"]),
        *web_api_routes(driver.workspace, driver.config, faults, driver.deliverer.socket_mode),
        *socket_mode_routes(driver.deliverer.socket_mode, lambda: driver.workspace.directory.bot.app_id),
        *ui_routes(driver, closing),
        *mail_routes(driver.workspace.inbox, driver.config),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes)
