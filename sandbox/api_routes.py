"""HTTP front of the Web API (`/api/{method}`), response URLs and the `/sandbox/*` controls."""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from slack_approvals.sandbox.config import SandboxConfig
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.faults import FaultInjector
from slack_approvals.sandbox.responses import apply_reply
from slack_approvals.sandbox.socket_mode import SocketModeHub
from slack_approvals.sandbox.webapi import METHODS
from slack_approvals.sandbox.workspace import Workspace

JSON_UTF8 = "application/json; charset=utf-8"


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename():
            fields[name] = {"filename": part.get_filename(), "size": len(data)}
        else:
            fields[name] = data.decode("utf-8", errors="replace")
    return fields


async def read_args(request: Request) -> tuple[dict[str, Any], bool]:
    """Merges query, form and JSON arguments; returns them and whether the body was JSON."""
    args: dict[str, Any] = dict(request.query_params)
    raw = await request.body()
    if not raw:
        return args, False
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("json_not_object")
        args.update(body)
        return args, True
    if kind == "application/x-www-form-urlencoded":
        args.update(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
    elif kind == "multipart/form-data":
        args.update(_parse_multipart(content_type, raw))
    else:
        raise SlackError("invalid_form_data")
    return args, False


def _token(request: Request, args: dict[str, Any], is_json: bool) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    # Slack accepts a token argument in form posts and query strings, never in JSON bodies.
    token = args.get("token")
    return str(token) if token and not is_json else None


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, headers=headers, media_type=JSON_UTF8)


def _connections_open(
    request: Request, workspace: Workspace, config: SandboxConfig, hub: SocketModeHub
) -> dict[str, Any]:
    """Socket Mode's URL: only for the app-level token, and only from the Authorization header."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token:
        raise SlackError("not_authed")
    if token == config.bot_token:
        raise SlackError("not_allowed_token_type")
    if token != config.app_token:
        raise SlackError("invalid_auth")
    app_id = workspace.directory.bot.app_id
    return {"ok": True, "url": config.socket_url(hub.issue_ticket(), app_id)}


def web_api_routes(
    workspace: Workspace,
    config: SandboxConfig,
    faults: FaultInjector,
    socket_mode: SocketModeHub | None = None,
) -> list[BaseRoute]:
    hub = socket_mode or SocketModeHub()

    async def call(request: Request) -> Response:
        method = request.path_params["method"]
        args: dict[str, Any] = {}
        status, headers = 200, None
        try:
            args, is_json = await read_args(request)
            token = _token(request, args, is_json)
            args.pop("token", None)
            if method == "apps.connections.open":
                body = _connections_open(request, workspace, config, hub)
            else:
                if token is None:
                    raise SlackError("not_authed")
                if token == config.app_token:
                    raise SlackError("not_allowed_token_type")
                if token != config.bot_token:
                    raise SlackError("invalid_auth")
                handler = METHODS.get(method)
                if handler is None:
                    raise SlackError("unknown_method", extra={"req_method": method})
                fault = faults.take(method)
                if fault is not None:
                    body, status, headers = fault.body(), fault.status, fault.headers()
                else:
                    body = handler(workspace, args)
        except SlackError as exc:
            body = exc.to_body()
        workspace.traffic.log_api_call(method, args, body, status)
        return _json(body, status, headers)

    async def respond(request: Request) -> Response:
        """A response_url: Slack answers these with plain-text `ok` or an error code."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return PlainTextResponse("invalid_payload", status_code=400)
        try:
            target = workspace.tokens.use_response_url(request.path_params["token"])
        except SlackError as exc:
            return PlainTextResponse(exc.code, status_code=404)
        try:
            apply_reply(workspace, target, body)
        except SlackError as exc:
            return PlainTextResponse(exc.code, status_code=400)
        return PlainTextResponse("ok")

    async def set_faults(request: Request) -> Response:
        if request.method == "DELETE":
            faults.clear()
            return JSONResponse({"ok": True, "pending": faults.pending()})
        if request.method == "POST":
            try:
                spec = json.loads(await request.body())
                faults.inject(
                    str(spec["method"]),
                    int(spec["status"]),
                    count=int(spec.get("count", 1)),
                    retry_after=int(spec["retry_after"]) if "retry_after" in spec else None,
                    error=str(spec["error"]) if "error" in spec else None,
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "pending": faults.pending()})

    async def reset(request: Request) -> Response:
        workspace.reset()
        faults.clear()
        return JSONResponse({"ok": True})

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            try:
                spec = json.loads(await request.body())
            except json.JSONDecodeError as exc:
                return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
            if "request_url" in spec:
                config.request_url = spec["request_url"] or None
        return JSONResponse({"ok": True, "request_url": config.request_url})

    return [
        Route("/api/{method}", call, methods=["GET", "POST"]),
        Route("/response/{token}", respond, methods=["POST"]),
        Route("/sandbox/faults", set_faults, methods=["GET", "POST", "DELETE"]),
        Route("/sandbox/reset", reset, methods=["POST"]),
        Route("/sandbox/config", settings, methods=["GET", "POST"]),
    ]
