"""The HTTP face of the bot: Slack's request URL and a health check, as a Starlette app.

A request reaches Bolt only when it is small, signed by Slack and shaped like a payload the
listeners read (bot/inbound.py); everything else is answered here without parsing it.
"""

from __future__ import annotations

import logging
import time

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .approval_page import ApprovalPages
from .deps import BotDeps
from .health import health_check
from .inbound import MAX_BODY_BYTES, payload_problem, signed
from .metrics import payload_kind

EVENTS_PATH = "/slack/events"

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


def _refused(status: int, error: str) -> Response:
    # Connection: close, so a body we did not read is not taken for the next request.
    return JSONResponse({"error": error}, status_code=status, headers={"Connection": "close"})


async def _body_within(request: Request, limit: int) -> bytes:
    """The body, read chunk by chunk and given up as soon as it passes `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_web_app(app: App, deps: BotDeps, *, signing_secret: str,
                  max_body_bytes: int = MAX_BODY_BYTES,
                  pages: ApprovalPages | None = None) -> Starlette:
    """`pages`: the web approval page of approval links, served beside /slack/events."""
    async def slack_events(request: Request) -> Response:
        arrived = time.perf_counter()
        try:
            body = await _body_within(request, max_body_bytes)
        except _TooLarge:
            return _refused(413, "request body too large")
        if not signed(signing_secret, body, request.headers):
            return _refused(401, "invalid request")
        problem = payload_problem(body, request.headers.get("content-type"))
        if problem is not None:
            log.warning("refused a signed request: %s", problem)
            return JSONResponse({"error": "malformed payload"}, status_code=400)
        # Bolt's App is blocking; a worker thread keeps the event loop free for other clicks.
        bolt_request = to_bolt_request(request, body)
        bolt_response = await run_in_threadpool(app.dispatch, bolt_request)
        # The listeners ack once the vote is stored (process_before_response): this response is the ack.
        deps.metrics.acked(payload_kind(bolt_request.body), time.perf_counter() - arrived)
        return to_starlette_response(bolt_response)

    return Starlette(routes=[
        Route(EVENTS_PATH, slack_events, methods=["POST"]),
        Route("/healthz", health_check(deps), methods=["GET"]),
        *(pages.routes() if pages is not None else []),
    ])
