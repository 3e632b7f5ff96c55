"""The bot's /healthz, one for every server it runs (Slack's endpoint and the approval page):
ok only while Redis answers, since without it no vote can be recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .deps import BotDeps

# A load balancer's health check does not retry: answer within its usual 3 s whatever Redis does.
HEALTH_TIMEOUT_SECONDS = 2.0

log = logging.getLogger(__name__)


def health_check(deps: BotDeps) -> Callable[[Request], Awaitable[Response]]:
    async def healthz(_: Request) -> Response:
        # Only ok / not ok: the endpoint is public, and Redis's address or error is not.
        try:
            ok = await asyncio.wait_for(run_in_threadpool(deps.store.ping),
                                        HEALTH_TIMEOUT_SECONDS)
        except Exception as e:  # any Redis failure (or silence) means "not healthy"
            log.warning("health check: Redis did not answer (%s)", type(e).__name__)
            ok = False
        return JSONResponse({"ok": bool(ok)}, status_code=200 if ok else 503)

    return healthz
