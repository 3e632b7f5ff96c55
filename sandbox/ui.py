"""`/ui/*` endpoints used by the web page: a state snapshot, live change events, and actions."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from slack_approvals.sandbox.driver import ActionResult, Driver, DriverError
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.records import ViewRecord

MESSAGES_SHOWN = 200
DELIVERIES_SHOWN = 25
STREAM_POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0


def _modal_json(driver: Driver, record: ViewRecord | None, user_id: str) -> dict[str, Any] | None:
    if record is None:
        return None
    view = driver.workspace.views.get(record.id)
    view["errors"] = dict(record.errors)
    view["depth"] = len(driver.workspace.views.modal_stack(user_id))
    return view


def snapshot(driver: Driver, user_id: str, channel_id: str | None) -> dict[str, Any]:
    """Everything one person's page shows; unknown people and channels fall back to the first."""
    ws = driver.workspace
    d = ws.directory
    if not d.has_user(user_id):
        user_id = d.users()[0].id
    visible = d.visible_channels(user_id)
    ids = [c.id for c in visible]
    current = channel_id if channel_id in ids else ids[0]
    channels = [
        {"id": c.id, "name": c.name, "is_im": d.im_owner(c.id) is not None, "topic": c.topic} for c in visible
    ]
    home = ws.views.home(user_id)
    return {
        "version": ws.version,
        "user": user_id,
        "team": {"id": d.team.id, "domain": d.team.domain, "name": d.team.name},
        "bot": {
            "user_id": d.bot.user_id,
            "bot_id": d.bot.bot_id,
            "name": d.bot.name,
            "display_name": d.bot.display_name,
        },
        "request_url": driver.config.request_url,
        "users": [
            {
                "id": u.id,
                "name": u.name,
                "real_name": u.real_name,
                "title": u.title,
                "groups": [g.handle for g in d.groups_of(u.id)],
            }
            for u in d.users()
        ],
        "groups": [
            {"id": g.id, "handle": g.handle, "name": g.name, "users": list(g.users)} for g in d.groups()
        ],
        "channels": channels,
        "channel": current,
        "messages": ws.messages.history(current, limit=MESSAGES_SHOWN),
        "ephemerals": ws.ephemerals.shown_to(user_id, current),
        "modal": _modal_json(driver, ws.views.top_modal(user_id), user_id),
        "home": ws.views.get(home.id) if home else None,
        "notices": [
            {"id": n.id, "text": n.text, "channel_id": n.channel_id, "time": n.time}
            for n in ws.notices.shown_to(user_id)
        ],
        "deliveries": [
            {k: v for k, v in dl.to_json().items() if k != "payload"}
            for dl in ws.traffic.deliveries()[-DELIVERIES_SHOWN:]
        ],
        # Summaries only: the page fetches the open mail's parts from /sandbox/mails/{id}.
        "inbox": {
            "smtp_url": driver.config.smtp_url,
            "mails": [m.summary_json() for m in ws.inbox.mails()],
        },
    }


def _need(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        raise DriverError(f"missing {key}")
    return str(value)


def _opt(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return None if value is None or value == "" else str(value)


def _result(result: ActionResult | dict[str, Any]) -> Response:
    body = result.to_json() if isinstance(result, ActionResult) else result
    return JSONResponse(body)


def _slash_or_say(driver: Driver, body: dict[str, Any]) -> ActionResult | dict[str, Any]:
    user_id, channel_id = _need(body, "user_id"), _need(body, "channel_id")
    line = _need(body, "text").strip()
    if line.startswith("/"):
        command, _, text = line.partition(" ")
        return driver.slash(user_id, channel_id, command, text.strip())
    return {"ok": True, "message": driver.say(user_id, channel_id, line)}


Action = Callable[[Driver, dict[str, Any]], "ActionResult | dict[str, Any]"]

ACTIONS: dict[str, Action] = {
    "click": lambda d, b: d.click(
        _need(b, "user_id"),
        _need(b, "channel_id"),
        _need(b, "message_ts"),
        _need(b, "action_id"),
        block_id=_opt(b, "block_id"),
        value=_opt(b, "value"),
    ),
    "click_view": lambda d, b: d.click_view(
        _need(b, "user_id"),
        _need(b, "view_id"),
        _need(b, "action_id"),
        block_id=_opt(b, "block_id"),
        value=_opt(b, "value"),
    ),
    "submit_view": lambda d, b: d.submit_view(_need(b, "user_id"), _opt(b, "view_id"), b.get("values") or {}),
    "close_view": lambda d, b: d.close_view(_need(b, "user_id"), _opt(b, "view_id")),
    "slash": _slash_or_say,
    "open_home": lambda d, b: d.open_home(_need(b, "user_id")),
    "dismiss_notice": lambda d, b: _dismiss(d, b),
}


def _dismiss(driver: Driver, body: dict[str, Any]) -> dict[str, Any]:
    driver.workspace.notices.dismiss(int(_need(body, "id")))
    return {"ok": True}


def ui_routes(driver: Driver, closing: threading.Event) -> list[BaseRoute]:
    async def state(request: Request) -> Response:
        user_id = request.query_params.get("user", "")
        return JSONResponse(snapshot(driver, user_id, request.query_params.get("channel")))

    async def stream(request: Request) -> Response:
        async def changes() -> AsyncIterator[str]:
            last = -1
            quiet = 0.0
            while not closing.is_set():
                version = driver.workspace.version
                if version != last:
                    last, quiet = version, 0.0
                    yield f"event: change\ndata: {json.dumps({'version': version})}\n\n"
                elif quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await asyncio.sleep(STREAM_POLL_SECONDS)
                quiet += STREAM_POLL_SECONDS

        return StreamingResponse(
            changes(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def act(request: Request) -> Response:
        name = request.path_params["action"]
        action = ACTIONS.get(name)
        if action is None:
            return JSONResponse({"ok": False, "error": f"unknown action {name}"}, status_code=404)
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise DriverError("the request body must be a JSON object")
            # Deliveries block for up to the timeout, and the app may call back into the
            # Web API meanwhile, so actions must not run on the event loop.
            result = await run_in_threadpool(action, driver, body)
        except (DriverError, SlackError, json.JSONDecodeError, ValueError) as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        return _result(result)

    async def deliveries(request: Request) -> Response:
        return JSONResponse([d.to_json() for d in driver.workspace.traffic.deliveries()])

    async def api_calls(request: Request) -> Response:
        method = request.query_params.get("method")
        return JSONResponse(
            [
                {
                    "method": c.method,
                    "args": c.args,
                    "response": c.response,
                    "status": c.status,
                    "time": c.time,
                }
                for c in driver.workspace.traffic.api_calls(method)
            ]
        )

    return [
        Route("/ui/state", state, methods=["GET"]),
        Route("/ui/stream", stream, methods=["GET"]),
        Route("/ui/deliveries", deliveries, methods=["GET"]),
        Route("/ui/api_calls", api_calls, methods=["GET"]),
        Route("/ui/{action}", act, methods=["POST"]),
    ]
