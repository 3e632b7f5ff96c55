"""`/sandbox/mails*`: the Inbox over HTTP, as JSON (list, one mail, clear) and one mail's raw source.

Mails come in the order they arrived; the page shows them newest first.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from slack_approvals.sandbox.config import SandboxConfig
from slack_approvals.sandbox.mails import Inbox, Mail


def _missing(mail_id: int, inbox: Inbox) -> Response:
    return JSONResponse(
        {"ok": False, "error": f"no mail {mail_id} (the Inbox keeps the last {inbox.limit})"},
        status_code=404,
    )


def mail_routes(inbox: Inbox, config: SandboxConfig) -> list[BaseRoute]:
    async def listing(request: Request) -> Response:
        if request.method == "DELETE":
            inbox.clear()
            return JSONResponse({"ok": True})
        to = request.query_params.get("to", "").strip() or None
        return JSONResponse(
            {
                "ok": True,
                "smtp_url": config.smtp_url,
                "limit": inbox.limit,
                "mails": [m.summary_json() for m in inbox.mails(to)],
            }
        )

    def _find(request: Request) -> Mail | int:
        mail_id: int = request.path_params["mail_id"]
        return inbox.get(mail_id) or mail_id

    async def one(request: Request) -> Response:
        mail = _find(request)
        if isinstance(mail, int):
            return _missing(mail, inbox)
        return JSONResponse({"ok": True, "mail": mail.to_json()})

    async def raw(request: Request) -> Response:
        """The message as received, headers and all; `text/plain` so a browser shows it."""
        mail = _find(request)
        if isinstance(mail, int):
            return _missing(mail, inbox)
        # nosniff: a mail's source must never be rendered as a page on the sandbox's own origin.
        return Response(mail.raw, media_type="text/plain; charset=utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})

    return [
        Route("/sandbox/mails", listing, methods=["GET", "DELETE"]),
        Route("/sandbox/mails/{mail_id:int}", one, methods=["GET"]),
        Route("/sandbox/mails/{mail_id:int}/raw", raw, methods=["GET"]),
    ]
