"""The web approval page behind an approval link: GET shows, only its own POST votes.

    GET  /approval/<request id>/<approve|reject>/<token>   the request, its state, whom the link
                                                          votes as, and a confirm form
    POST the same path, from that form (CSRF token)        the vote, through store.redeem: the
                                                          same rules as a click, and the same
                                                          follow-up (message edited, decision
                                                          reported, waiting run woken)

Link scanners and chat previews fetch with GET, so a GET writes nothing (but a wrong token's
count, for the rate limit). The client address is the proxy's X-Forwarded-For only when the
proxy is among APPROVALS_TRUSTED_PROXIES (uvicorn's forwarded_allow_ips). The CSRF token is a
double-submit cookie: the form carries the value of a SameSite=Strict cookie set by the GET,
which another site can neither read nor send.
A used, expired, tampered or closed link gets a page saying so, never a trace.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from slack_approvals.state.errors import RequestNotFound
from slack_approvals.state.models import (
    MAX_REASON,
    ApprovalRequest,
    DecideResult,
    DecideStatus,
    Outcome,
    Status,
    email_of,
)

from .deps import BotDeps
from .health import health_check
from .links import LINK_PREFIX, Link, parse_link
from .mailer import templates

log = logging.getLogger(__name__)

CSRF_COOKIE = "approvals_csrf"
# Wrong tokens one client address may try per minute; past it, wrong ones get a 429 (a valid
# link always opens).
MISS_LIMIT = 20
MAX_FORM_BYTES = 16 * 1024
HEADERS = {
    "Cache-Control": "no-store",
    # The token is in the URL: no Referer may carry it to another site.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}
STATE_TEXT = {Status.APPROVED: "approved", Status.REJECTED: "rejected",
              Status.TIMED_OUT: "timed out", Status.CANCELLED: "cancelled"}
REFUSED_TEXT = {
    DecideStatus.CLOSED: ("This request is closed", "It was decided before your vote: nothing changed."),
    DecideStatus.SETTLED: ("This request is already approved",
                           "An escalation tier lowered the quorum and the approvals already "
                           "given met it: your vote was not recorded and this link stays unused."),
    DecideStatus.EXPIRED: ("This request has expired",
                           "Its deadline passed before your vote: nothing changed."),
    DecideStatus.SELF_APPROVAL: ("You cannot approve your own request",
                                 "You asked for it, so someone else must approve it."),
    DecideStatus.DUPLICATE_VOTE: ("You have voted already",
                                  "Your vote on this request was recorded before (in Slack or by "
                                  "mail); a second one does not count."),
    DecideStatus.NOT_ELIGIBLE: ("You may not vote on this request",
                                "This address is not among its approvers."),
    DecideStatus.UNKNOWN: ("This request no longer exists",
                           "It has expired from the approval store: nothing changed."),
}


@dataclass(frozen=True)
class Page:
    status: int
    heading: str
    message: str = ""
    problem: bool = False
    request: ApprovalRequest | None = None
    form: dict[str, Any] | None = None
    voter: str = ""


def _state_text(request: ApprovalRequest) -> str:
    if request.decision is not None:
        return STATE_TEXT[request.decision.status]
    if datetime.now(UTC) >= request.deadline:
        return "expired (deadline passed)"
    return f"waiting: {len(request.approvals)} of {request.spec.quorum} approvals"


class ApprovalPages:
    """The routes of the page, over the bot's store and follow-up path."""

    def __init__(self, deps: BotDeps, *, miss_limit: int = MISS_LIMIT, secure_cookie: bool = True,
                 name_of: Callable[[str], str | None] | None = None) -> None:
        self.deps = deps
        self.miss_limit = miss_limit
        self.secure_cookie = secure_cookie
        # Shows the requester by name when given (users.info); else by Slack id.
        self.name_of = name_of

    def routes(self) -> list[Route]:
        return [Route(LINK_PREFIX + "/{request_id}/{vote}/{token}", self.handle,
                      methods=["GET", "POST"])]

    async def handle(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        params = request.path_params
        try:
            link = parse_link(str(params["request_id"]), str(params["vote"]), str(params["token"]))
            if link is None:
                return self._render(await run_in_threadpool(self._miss, client))
            if request.method == "POST":
                return await self._post(request, link, client)
            return await run_in_threadpool(self._show, link, client)
        except RedisError as e:
            log.error("approval page: Redis %s", type(e).__name__)
            return self._render(Page(503, "Try again in a moment",
                                     "The approval store did not answer: nothing was recorded.",
                                     problem=True))
        except Exception:
            # Logged with its trace (never the token: it is not in the message); the person
            # sees a page, not the trace.
            log.exception("approval page failed for request %s", params.get("request_id"))
            return self._render(Page(500, "Something went wrong",
                                     "Your vote may not have been recorded. Open the link again "
                                     "to see where the request stands.", problem=True))

    def _miss(self, client: str) -> Page:
        """A wrong link, counted against the client: only wrong links are ever refused for the
        count, so a valid link opens whatever others sent from the same address (a shared
        proxy, an office's NAT)."""
        if self.deps.store.link_misses(client, True) > self.miss_limit:
            return Page(429, "Too many wrong links",
                        "This address tried too many links that are not valid. Wait a minute, "
                        "then open the link from your mail again.", problem=True)
        return Page(404, "This link is not valid",
                    "It may have been cut or changed on the way, or it has expired with its "
                    "request. Open it again from your mail, whole.", problem=True)

    def _lookup(self, link: Link, client: str) -> tuple[dict[str, str] | None, Page | None]:
        record = self.deps.store.link(link.request_id, link.token_hash)
        if record is None or record.get("vote") != link.vote.value:
            return None, self._miss(client)
        return record, None

    def _voter_text(self, record: dict[str, str], request: ApprovalRequest) -> str:
        voter = record.get("voter", "")
        address = email_of(voter) or voter
        user = request.aliases.get(voter)
        if user is None:
            return address
        return f"{address}, which is {self._name(user)} in Slack (one vote, by mail or in Slack)"

    def _name(self, user: str) -> str:
        if self.name_of is None:
            return user
        try:
            return str(self.name_of(user) or user)
        except Exception as e:  # Slack away: the id will do
            log.info("no name for %s: %s", user, type(e).__name__)
            return user

    def _show(self, link: Link, client: str) -> Response:
        record, refused = self._lookup(link, client)
        if refused is not None or record is None:
            return self._render(refused or Page(404, "This link is not valid", problem=True))
        try:
            request = self.deps.store.get(link.request_id)
        except RequestNotFound:
            return self._render(Page(410, *REFUSED_TEXT[DecideStatus.UNKNOWN], problem=True))
        page = self._closed_page(record, request)
        if page is not None:
            return self._render(page)
        csrf = secrets.token_urlsafe(24)
        response = self._render(self._form(link, record, request, csrf))
        # Scoped to this link's own path: the page of another link open in another tab keeps
        # its own token.
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict",
                            secure=self.secure_cookie,
                            path=f"{LINK_PREFIX}/{link.request_id}/{link.vote.value}/")
        return response

    def _closed_page(self, record: dict[str, str], request: ApprovalRequest) -> Page | None:
        if record.get("used_ms"):
            used = datetime.fromtimestamp(int(record["used_ms"]) / 1000, tz=UTC)
            return Page(409, "This link has been used",
                        f"It recorded a vote at {used:%Y-%m-%d %H:%M} UTC; using it again changes "
                        "nothing.", problem=True, request=request)
        if request.decision is not None:
            return Page(409, "This request is closed",
                        f"It was {STATE_TEXT[request.decision.status]} before your vote: "
                        "nothing changed.", problem=True, request=request)
        if datetime.now(UTC) >= request.deadline:
            return Page(410, *REFUSED_TEXT[DecideStatus.EXPIRED], problem=True, request=request)
        voter = record.get("voter", "")
        if any(v.user == request.aliases.get(voter, voter) for v in request.votes):
            return Page(409, *REFUSED_TEXT[DecideStatus.DUPLICATE_VOTE], problem=True,
                        request=request)
        return None

    def _form(self, link: Link, record: dict[str, str], request: ApprovalRequest, csrf: str,
              reason: str = "", error: str = "") -> Page:
        verb = "Approve" if link.vote is Outcome.APPROVE else "Reject"
        return Page(400 if error else 200, f"{verb} this request?", request=request,
                    voter=self._voter_text(record, request),
                    form={"action": f"{LINK_PREFIX}/{link.request_id}/{link.vote.value}/{link.token}",
                          "csrf": csrf, "vote": link.vote.value, "reason": reason, "error": error,
                          "max_reason": MAX_REASON})

    async def _post(self, request: Request, link: Link, client: str) -> Response:
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            return self._render(Page(413, "The form was too large", problem=True))
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return self._render(Page(413, "The form was too large", problem=True))
        try:
            form = parse_qs(body.decode("utf-8"), max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            form = {}
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = (form.get("csrf") or [""])[0]
        reason = (form.get("reason") or [""])[0].strip()
        return await run_in_threadpool(self._vote, link, client, cookie, sent, reason)

    def _vote(self, link: Link, client: str, cookie: str, sent: str, reason: str) -> Response:
        record, refused = self._lookup(link, client)
        if refused is not None or record is None:
            return self._render(refused or Page(404, "This link is not valid", problem=True))
        if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
            return self._render(Page(403, "Please confirm again",
                                     "This form did not come from the page this link opened "
                                     "(or that page is too old). Open the link again and confirm "
                                     "there: nothing was recorded.", problem=True))
        if (link.vote is Outcome.REJECT and not reason) or len(reason) > MAX_REASON:
            request = self.deps.store.get(link.request_id)
            error = ("Say why you reject it." if not reason
                     else f"At most {MAX_REASON} characters, please.")
            return self._render(self._form(link, record, request, cookie, reason, error))
        status, result = self.deps.store.redeem(link.request_id, link.token_hash, reason or None)
        if status == "link_unknown":
            return self._render(Page(404, "This link is not valid", problem=True))
        if result is None:  # used by a vote that landed since this page was shown
            request = self.deps.store.get(link.request_id)
            page = self._closed_page(self.deps.store.link(link.request_id, link.token_hash) or {},
                                     request)
            return self._render(page or Page(409, "This link has been used", problem=True))
        return self._render(self._after(result, link))

    def _after(self, result: DecideResult, link: Link) -> Page:
        request = result.request
        if not result.status.accepted or request is None:
            heading, message = REFUSED_TEXT.get(result.status, REFUSED_TEXT[DecideStatus.CLOSED])
            if result.status is DecideStatus.EXPIRED and request is not None:
                self.deps.background.submit(self.deps.closer.expire, request.id)
            if result.status is DecideStatus.SETTLED and request is not None:
                # This visit closed it: the Slack message and the report follow as for a click.
                self.deps.background.submit(self.deps.closer.announce, request)
            return Page(409, heading, message, problem=True, request=request)
        # The same follow-up as a click: the Slack message shows the vote, a final decision is
        # reported (the waiting run already woke on Redis).
        self.deps.background.submit(self.deps.closer.announce, request)
        verb = "approval" if link.vote is Outcome.APPROVE else "rejection"
        if request.decision is not None:
            message = f"The request is now {STATE_TEXT[request.decision.status]}."
        else:
            quorum = request.quorum_at(datetime.now(UTC))
            message = (f"{len(request.approvals)} of {quorum} approvals so far; "
                       "the request waits for the others.")
        return Page(200, f"Your {verb} was recorded", message, request=request)

    def _render(self, page: Page) -> HTMLResponse:
        request = page.request
        requester = None
        if request is not None and request.spec.requester:
            requester = self._name(request.spec.requester)
        html = templates().get_template("approval_page.html").render(
            heading=page.heading, message=page.message, problem=page.problem, request=request,
            form=page.form, voter=page.voter, requester=requester,
            state=_state_text(request) if request is not None else "",
            deadline=(request.deadline.strftime("%Y-%m-%d %H:%M UTC") if request is not None else ""))
        return HTMLResponse(html, status_code=page.status, headers=HEADERS)


def page_app(pages: ApprovalPages) -> Starlette:
    """The page alone, for Socket Mode (no Slack endpoint to share a server with); its health
    check is the HTTP app's, so a load balancer sees Redis down here too."""
    return Starlette(routes=[*pages.routes(),
                             Route("/healthz", health_check(pages.deps), methods=["GET"])])
