"""The scripted people of `approvals demo --auto`: who clicks what, reproducibly.

They act only through the sandbox, i.e. through signed Slack deliveries to the bot, exactly as
a person clicking in the page would.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from slack_approvals.bot.ids import APPROVE_ACTION, REASON_BLOCK, REJECT_ACTION
from slack_approvals.sandbox.driver import Driver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Act:
    user: str
    vote: str  # "approve" | "reject" | "wait" (let the request time out)
    reason: str = ""
    # An approver outside Slack who votes the same way from the mail's link.
    email: str = ""


# The deploy's second approver has no Slack account: asked by mail, approving from its link.
AUDITOR = "auditor@example.com"


# One rule per channel: finance approves, engineering rejects with a reason, sales lets its
# request time out, and the deploy is approved by the manager.
POLICY: dict[str, Act] = {
    "C02FINANCE": Act("U02FRANK", "approve"),
    "C03ENG": Act("U03ERIN", "reject", "Cloud spend is 18% over the quarter's budget"),
    "C04SALES": Act("U05SARA", "wait"),
    "C05DEPLOYS": Act("U01MAYA", "approve", email=AUDITOR),
}
EXPECTED_STATUS = {"approve": "approved", "reject": "rejected", "wait": "timed_out"}


def approval_policy_text(timeout: timedelta) -> str:
    """The demo's approval policy: each department signs off in its own channel, the deploy
    goes to the manager, and everyone has `timeout` to decide. The flows name nobody."""
    return f"""\
version: 1
defaults:
  timeout: {max(int(timeout.total_seconds()), 1)}s
  lock: true
rules:
  - name: finance-sign-off
    match: {{flow: department-review, gate: "department:finance"}}
    channel: C02FINANCE
    approver_groups: [S01FINANCE]
  - name: engineering-sign-off
    match: {{flow: department-review, gate: "department:engineering"}}
    channel: C03ENG
    approvers: [U03ERIN, U04OLIVER]
  - name: sales-sign-off
    match: {{flow: department-review, gate: "department:sales"}}
    channel: C04SALES
    approvers: [U05SARA]
  - name: review-roll-up
    match: {{flow: department-review, gate: rollup}}
    channel: C01APPROVALS
  - name: production-deploys
    match: {{flow: deploy-approval, params: {{environment: production}}}}
    channel: C05DEPLOYS
    approvers: [U01MAYA]
    email_approvers: [{AUDITOR}]
    quorum: 2
"""


def _buttons(message: dict[str, Any]) -> str | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == APPROVE_ACTION:
                return str(element.get("value"))
    return None


class AutoClicker:
    """Watches the policy's channels and acts once on each new request message."""

    def __init__(self, sandbox: Driver, delay: float = 0.5) -> None:
        self.sandbox = sandbox
        self.delay = delay
        self.acted: dict[str, Act] = {}
        self.mailed: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-auto-clicker", daemon=True)

    def _act(self, channel: str, message: dict[str, Any], request_id: str, act: Act) -> None:
        self.acted[request_id] = act
        if act.vote == "wait":
            return
        if act.vote == "approve":
            self.sandbox.click(act.user, channel, message["ts"], APPROVE_ACTION)
            return
        self.sandbox.click(act.user, channel, message["ts"], REJECT_ACTION)
        self.sandbox.wait_for(lambda: self.sandbox.open_view(act.user), timeout=5,
                              what="the reject modal")
        self.sandbox.submit_view(act.user, values={REASON_BLOCK: act.reason})

    def _follow_mail(self, act: Act) -> None:
        """Open each new mail's Approve link and confirm on the page, as the person would."""
        for mail in self.sandbox.mails(act.email):
            if mail.id in self.mailed:
                continue
            self.mailed.add(mail.id)
            url = mail.link("/approve/")
            with httpx.Client(timeout=10) as http:
                page = http.get(url)
                found = re.search(r'name="csrf" value="([^"]+)"', page.text)
                if found is None:
                    log.error("auto-clicker: the approval page of mail %s shows no form", mail.id)
                    continue
                http.post(url, data={"csrf": found.group(1), "reason": ""})

    def _loop(self) -> None:
        while not self._stop.wait(self.delay):
            for act in POLICY.values():
                if act.email:
                    try:
                        self._follow_mail(act)
                    except (httpx.HTTPError, ValueError) as e:
                        log.error("auto-clicker could not follow a mailed link: %s", e)
            for channel, act in POLICY.items():
                for message in self.sandbox.messages(channel):
                    request_id = _buttons(message)
                    if request_id and request_id not in self.acted:
                        try:
                            self._act(channel, message, request_id, act)
                        except (TimeoutError, RuntimeError) as e:
                            log.error("auto-clicker could not act on %s: %s", request_id, e)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
