"""Settings shared by the sandbox's parts: tokens and secrets, the app's request URL, public base URL,
the mail catcher's address."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_SIGNING_SECRET = "sandbox-signing-secret"
DEFAULT_BOT_TOKEN = "xoxb-sandbox-bot-token"
DEFAULT_VERIFICATION_TOKEN = "sandbox-verification-token"
DEFAULT_APP_TOKEN = "xapp-sandbox-app-token"


@dataclass
class SandboxConfig:
    """`request_url` and `base_url` may change after start-up (ports are often picked late)."""

    signing_secret: str = DEFAULT_SIGNING_SECRET
    bot_token: str = DEFAULT_BOT_TOKEN
    request_url: str | None = None
    verification_token: str = DEFAULT_VERIFICATION_TOKEN
    base_url: str = "http://127.0.0.1:8765"
    delivery_timeout: float = 3.0
    app_token: str = DEFAULT_APP_TOKEN
    # The mail catcher's `smtp://host:port` once it listens; None while it is off.
    smtp_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxConfig:
        source = os.environ if env is None else env
        return cls(
            signing_secret=source.get("SANDBOX_SIGNING_SECRET", DEFAULT_SIGNING_SECRET),
            bot_token=source.get("SANDBOX_BOT_TOKEN", DEFAULT_BOT_TOKEN),
            request_url=source.get("SANDBOX_REQUEST_URL") or None,
            verification_token=source.get("SANDBOX_VERIFICATION_TOKEN", DEFAULT_VERIFICATION_TOKEN),
            app_token=source.get("SANDBOX_APP_TOKEN", DEFAULT_APP_TOKEN),
        )

    def response_url(self, token: str) -> str:
        return f"{self.base_url.rstrip('/')}/response/{token}"

    def socket_url(self, ticket: str, app_id: str) -> str:
        """What `apps.connections.open` hands out; plain ws:// because the sandbox has no TLS."""
        base = self.base_url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}/link/?ticket={ticket}&app_id={app_id}"
