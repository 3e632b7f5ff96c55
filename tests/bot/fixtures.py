"""The bot under test: its real HTTP endpoint, a real Redis, and the sandbox as Slack."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from slack_approvals.approvals.serving import ServerThread
from slack_approvals.bot.app import build_app
from slack_approvals.bot.client import make_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.launcher import Launched, LaunchError
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.sweeper import Sweeper
from slack_approvals.bot.web import build_web_app
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.state.models import ApprovalRequest, RequestSpec
from slack_approvals.state.store import ApprovalStore
from tests.conftest import RedisServer

SIGNING_SECRET = "5d41402abc4b2a76b9719d911017c592"
BOT_TOKEN = "xoxb-sandbox-bot-token"

MAYA, FRANK, ERIN, OLIVER, SARA, RILEY = ("U01MAYA", "U02FRANK", "U03ERIN", "U04OLIVER",
                                         "U05SARA", "U06REQ")
APPROVALS_CHANNEL = "C01APPROVALS"
FINANCE_GROUP = "S01FINANCE"


def sign(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    """Exactly Slack's scheme: v0= + HMAC-SHA256 over v0:{timestamp}:{raw body}."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class RecordingLauncher:
    """Starts nothing; stands in for the flows layer, which bot/ must not import."""

    launched: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    # What run_gone answers per flow run id (a state name); runs not named still wait.
    gone: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def flows(self) -> Mapping[str, str]:
        return {"deploy-approval": "Gate a production deploy", "simple-approval": "One approval"}

    def check(self, flow: str, params: Mapping[str, str]) -> None:
        if "version" in params and not params["version"].startswith("v"):
            raise LaunchError("version: must look like v1.2.3")

    def launch(self, flow: str, params: Mapping[str, str], *, requested_by: str,
               channel: str) -> Launched:
        self.check(flow, params)
        self.launched.append((flow, dict(params), requested_by))
        return Launched(flow_run_id=f"run-{len(self.launched)}", flow_name=flow)

    def run_gone(self, flow_run_id: str) -> str | None:
        self.asked.append(flow_run_id)
        return self.gone.get(flow_run_id)


@dataclass
class BotStack:
    sandbox: SandboxServer
    store: ApprovalStore
    deps: BotDeps
    sweeper: Sweeper
    launcher: RecordingLauncher
    url: str
    decided: list[ApprovalRequest]

    def post(self, **overrides: Any) -> ApprovalRequest:
        """Create a request and post it, as a flow gate would."""
        fields: dict[str, Any] = {"title": "Deploy api v2.3.1", "summary": "Release notes: faster.",
                                  "channel": APPROVALS_CHANNEL, "approvers": [MAYA, FRANK],
                                  "quorum": 1, "requester": RILEY}
        fields.update(overrides)
        return self.deps.messenger.post(self.store.create(RequestSpec.model_validate(fields)))

    def message(self, request: ApprovalRequest) -> dict[str, Any]:
        assert request.message_channel and request.message_ts
        return self.sandbox.message(request.message_channel, request.message_ts)

    def click(self, user: str, request: ApprovalRequest, action: str) -> Any:
        assert request.message_channel and request.message_ts
        return self.sandbox.click(user, request.message_channel, request.message_ts, action)

    def message_text(self, request: ApprovalRequest) -> str:
        """Everything the message shows, flattened, for assertions on what people read."""
        return flatten(self.message(request))

    def wait_message(self, request: ApprovalRequest, needle: str, timeout: float = 5) -> str:
        def shown() -> str | None:
            text = self.message_text(request)
            return text if needle in text else None
        return self.sandbox.wait_for(shown, timeout=timeout, what=f"message to show {needle!r}")

    def wait_ephemeral(self, user: str, needle: str, timeout: float = 5) -> str:
        return wait_ephemeral(self.sandbox, user, needle, timeout)

    def send_raw(self, body: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/slack/events", content=body, headers=headers, timeout=5)

    def signed_headers(self, body: str, timestamp: int | None = None,
                       content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sign(body, ts),
                "Content-Type": content_type}


def wait_ephemeral(sandbox: SandboxServer, user: str, needle: str, timeout: float = 5) -> str:
    """The text of the first ephemeral shown to `user` that holds `needle`, once it is there."""
    def found() -> str | None:
        for eph in sandbox.ephemerals(user):
            text = flatten(eph)
            if needle in text:
                return text
        return None
    return sandbox.wait_for(found, timeout=timeout, what=f"ephemeral {needle!r}")


def flatten(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(flatten(v) for k, v in value.items() if k not in ("action_id", "block_id"))
    if isinstance(value, list):
        return " ".join(flatten(v) for v in value)
    return str(value)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN) as sb:
        yield sb


@pytest.fixture
def bot(sandbox: SandboxServer, redis_server: RedisServer) -> Iterator[BotStack]:
    sandbox.reset()
    client = make_client(BOT_TOKEN, sandbox.api_url)
    redis_client = redis_server.client()
    redis_client.flushall()
    store = ApprovalStore(redis_client, retention=timedelta(days=1))
    decided: list[ApprovalRequest] = []
    launcher = RecordingLauncher()
    deps = BotDeps(store=store, messenger=Messenger(client, store), groups=GroupResolver(client),
                   launcher=launcher, on_decision=decided.append)
    app = build_app(client=client, signing_secret=SIGNING_SECRET, deps=deps)
    with ServerThread(build_web_app(app, deps, signing_secret=SIGNING_SECRET)) as server:
        sandbox.set_request_url(f"{server.url}/slack/events")
        yield BotStack(sandbox=sandbox, store=store, deps=deps, sweeper=Sweeper(deps, 60),
                       launcher=launcher, url=server.url, decided=decided)
    deps.background.shutdown(wait=True)
    redis_client.close()
