"""The HTTP face of the bot: Slack's request URL and a health check, as a Starlette app."""

from __future__ import annotations

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .deps import BotDeps

EVENTS_PATH = "/slack/events"


def build_web_app(app: App, deps: BotDeps) -> Starlette:
    async def slack_events(request: Request) -> Response:
        body = await request.body()
        # Bolt's App is blocking; a worker thread keeps the event loop free for other clicks.
        bolt_response = await run_in_threadpool(app.dispatch, to_bolt_request(request, body))
        return to_starlette_response(bolt_response)

    async def healthz(_: Request) -> Response:
        try:
            ok = await run_in_threadpool(deps.store.ping)
        except Exception as e:  # any Redis failure means "not healthy", reported, not raised
            return JSONResponse({"ok": False, "redis": str(e)}, status_code=503)
        return JSONResponse({"ok": ok}, status_code=200 if ok else 503)

    return Starlette(routes=[
        Route(EVENTS_PATH, slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])
