"""Approvers outside Slack: how fast the bot mails them, and how soon a confirmed link wakes a
waiting gate.

N requests, each with one email approver and one Slack approver, on a private redis-server, the
sandbox (its own process) as Slack and an aiosmtpd server on loopback. One sweep of the mailer
sends all N mails (time, Redis commands and SMTP sessions per mail). Then, for K of them, a
waiter blocks on the request (`store.wait`, as a gate does) while the link is opened (GET) and
confirmed (POST) over HTTP: the time from sending the POST to the waiter waking, and the POST's
own round trip.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from slack_approvals.approvals.serving import ServerThread, free_port
from slack_approvals.bot.approval_page import ApprovalPages, page_app
from slack_approvals.bot.client import make_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.mailer import (
    SEND_WORKERS,
    Mailer,
    SlackDirectory,
    SmtpTarget,
    SmtpTransport,
)
from slack_approvals.bot.messenger import Messenger
from slack_approvals.state.models import RequestSpec
from slack_approvals.state.store import ApprovalStore

from .clicks import APPROVER, CHANNEL, REQUESTER
from .common import Mode, Result, finish, machine, ms, new_figure, save_figure, summary
from .pipelined import PipelinedRunner
from .services import BOT_TOKEN, RedisServer, SandboxProcess

NAME = "email_links"
TITLE = "Email approvers: mails sent per sweep, confirmed link to waking gate"
# A waiting gate wakes on a click within this (README "How fast"); a link should do as well.
TARGET_WAKE_MS = 50.0

SIZES: dict[Mode, dict[str, Any]] = {
    "full": {"mails": 500, "votes": 200},
    "quick": {"mails": 100, "votes": 50},
    "tiny": {"mails": 5, "votes": 3},
}
LINK = re.compile(r"http://[^\s]+/approval/([a-z0-9]{16})/approve/[A-Za-z0-9_-]{43}")


class Catcher:
    """Keeps every approve link it receives, by request id."""

    def __init__(self) -> None:
        self.links: dict[str, str] = {}
        self.sessions = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sessions += 1
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        body = email.message_from_bytes(raw, policy=email.policy.default).get_body(("plain",))
        found = LINK.search(str(body.get_content()) if body is not None else "")  # type: ignore[attr-defined]
        if found:
            self.links[found.group(1)] = found.group(0)
        return "250 OK"


def commands(store: ApprovalStore) -> int:
    return int(store.client.info("stats")["total_commands_processed"])


def vote(http: httpx.Client, store: ApprovalStore, request_id: str, url: str) -> tuple[float, float]:
    """Open and confirm one link while a waiter blocks on the request: (POST sent to waiter
    awake, POST round trip), in seconds."""
    woke: list[float] = []
    ready = threading.Event()

    def waiter() -> None:
        ready.set()
        store.wait(request_id, 30)
        woke.append(time.perf_counter())

    thread = threading.Thread(target=waiter)
    thread.start()
    ready.wait()
    page = http.get(url)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    if csrf is None:
        raise RuntimeError(f"the page of {request_id} shows no form: {page.status_code}")
    time.sleep(0.02)  # the waiter is blocked in BLPOP by now
    sent = time.perf_counter()
    http.post(url, data={"csrf": csrf.group(1), "reason": ""})
    answered = time.perf_counter()
    thread.join(timeout=30)
    if not woke:
        raise RuntimeError(f"the waiter on {request_id} never woke")
    return woke[0] - sent, answered - sent


def run(mode: Mode, results_dir: Path) -> Result:
    params = dict(SIZES[mode])
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    started = time.perf_counter()
    catcher = Catcher()
    smtp_port = free_port()
    controller = Controller(catcher, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        with RedisServer() as redis_server, SandboxProcess() as sandbox:
            store = ApprovalStore(redis_server.client())
            waiter_store = ApprovalStore(redis_server.client(), waiter=redis_server.client())
            client = make_client(BOT_TOKEN, sandbox.api_url)
            deps = BotDeps(store=store, messenger=Messenger(client, store),
                           groups=GroupResolver(client))
            with ServerThread(page_app(ApprovalPages(deps, secure_cookie=False))) as page:
                mailer = Mailer(store, SmtpTransport(SmtpTarget("127.0.0.1", smtp_port, False)),
                                "approvals@example.com", page.url, SlackDirectory(client))
                runner = PipelinedRunner(store.client)
                specs = [RequestSpec(title=f"Bench payment {n}", channel=CHANNEL,
                                     approvers=[APPROVER], email_approvers=[f"payer{n}@example.com"],
                                     quorum=1, requester=REQUESTER, timeout=timedelta(hours=1))
                         for n in range(params["mails"])]
                requests = runner.run([store.plans.create(spec, None) for spec in specs])
                before, timer = commands(store), time.perf_counter()
                sent = mailer.run_due()
                sweep_s = time.perf_counter() - timer
                used = commands(store) - before - 1
                wakes: list[float] = []
                posts: list[float] = []
                with httpx.Client(timeout=30) as http:
                    for request in requests[:params["votes"]]:
                        wake, post = vote(http, waiter_store, request.id, catcher.links[request.id])
                        wakes.append(wake)
                        posts.append(post)
                deps.background.shutdown(wait=True)
    finally:
        controller.stop()

    n = params["mails"]
    wake_ms = summary([ms(w) for w in wakes])
    post_ms = summary([ms(p) for p in posts])
    result.data.update({"sweep_s": sweep_s, "sent": sent, "commands": used,
                        "smtp_sessions": catcher.sessions,
                        "wake_ms": [ms(w) for w in wakes], "post_ms": [ms(p) for p in posts]})
    result.add(f"one sweep mailing {n:,} approvers", sweep_s, "s",
               detail=f"{sweep_s / n * 1000:.1f} ms a mail: one SMTP session and two Slack "
                      f"calls (users.lookupByEmail, users.info) each, {SEND_WORKERS} at a time")
    result.add("mails sent exactly once", sent, "", f"= {n}", sent == n == catcher.sessions)
    result.add("Redis commands per mail", used / n, "",
               detail="server count incl. inside Lua: claim, read, lease + links, sent")
    result.add("confirm (POST) to waiting gate awake, median", wake_ms["median"], "ms",
               f"< {TARGET_WAKE_MS:g} ms", wake_ms["median"] < TARGET_WAKE_MS,
               detail=f"p99 {wake_ms['p99']:.1f} ms over {len(wakes)} links")
    result.add("confirm (POST) round trip, median", post_ms["median"], "ms",
               detail=f"p99 {post_ms['p99']:.1f} ms; the page answers after the vote is in Redis")
    result.notes.append(f"The mailer sends one mail per SMTP session, {SEND_WORKERS} at a time, "
                        "at the end of a sweep; a real mail server's latency (TLS, a remote "
                        "host) adds to each mail.")
    return finish(result, results_dir, started, plot)


def plot(result: Result, results_dir: Path) -> None:
    data = result.data
    fig, (ax,) = new_figure(width=6.0, height=3.2)
    ax.hist(data["wake_ms"], bins=20, color="#4C72B0", label="POST to waiter awake")
    ax.hist(data["post_ms"], bins=20, color="#DD8452", alpha=0.6, label="POST round trip")
    ax.axvline(TARGET_WAKE_MS, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("ms")
    ax.set_ylabel("links")
    ax.legend(fontsize=8)
    save_figure(fig, result, results_dir, "one link at a time")
