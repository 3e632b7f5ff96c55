"""Approval links: a random token per request, approver and vote, kept in Redis only as its
SHA-256, so a copy of the database votes for nobody.

    new_token()                       32 random bytes, URL-safe
    token_hash(token)                 what Redis keys the link under
    link_path(request_id, vote, token) /approval/<request id>/<approve|reject>/<token>
    parse_link(...)                   the parts of a path, or None when it cannot be a link

Random tokens rather than HMAC-signed ones: a signed link still needs Redis to be usable
once, and a stored hash needs no secret that every bot must share and nobody may log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from slack_approvals.state.models import REQUEST_ID_PATTERN, Outcome

LINK_PREFIX = "/approval"
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_path(request_id: str, vote: Outcome, token: str) -> str:
    return f"{LINK_PREFIX}/{request_id}/{vote.value}/{token}"


def link_url(public_url: str, request_id: str, vote: Outcome, token: str) -> str:
    return public_url.rstrip("/") + link_path(request_id, vote, token)


@dataclass(frozen=True)
class Link:
    request_id: str
    vote: Outcome
    token: str

    @property
    def token_hash(self) -> str:
        return token_hash(self.token)


def parse_link(request_id: str, vote: str, token: str) -> Link | None:
    """None for anything that no link this bot writes could be (typed, cut or tampered)."""
    if not REQUEST_ID_PATTERN.match(request_id) or not TOKEN_PATTERN.match(token):
        return None
    try:
        return Link(request_id, Outcome(vote), token)
    except ValueError:
        return None
