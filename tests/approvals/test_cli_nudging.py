"""`approvals request --remind-every --escalate-after --escalate-to`, and `--wait` sending
its own reminders."""

from __future__ import annotations

import threading
from datetime import timedelta

from slack_approvals.bot.ids import APPROVE_ACTION
from tests.approvals.test_cli_errors import Cli, Ran, cli  # noqa: F401  (the fixture)
from tests.bot.fixtures import APPROVALS_CHANNEL, FINANCE_GROUP, FRANK, MAYA, BotStack


def test_request_with_reminders_and_one_escalation_tier(cli: Cli, bot: BotStack) -> None:  # noqa: F811
    ran = cli("request", "--title", "Rotate keys", "--approver", MAYA, "--remind-every", "30m",
              "--remind-limit", "2", "--escalate-after", "4h", "--escalate-to", FRANK,
              "--escalate-to", FINANCE_GROUP, "--quorum", "2", "--escalate-quorum", "1")
    assert ran.code == 0, ran
    spec = bot.store.get(ran.out.split()[0]).spec
    assert (spec.remind_every, spec.remind_limit) == (timedelta(minutes=30), 2)
    assert [(t.after, t.to, t.quorum) for t in spec.escalate] == [
        (timedelta(hours=4), [FRANK, FINANCE_GROUP], 1)]
    assert spec.quorum_with(0) == 2 and spec.quorum_with(1) == 1


def test_escalate_after_and_to_go_together(cli: Cli) -> None:  # noqa: F811
    ran = cli("request", "--title", "Rotate keys", "--approver", MAYA, "--escalate-to", FRANK)
    assert ran.code == 3 and "--escalate-after and --escalate-to go together" in ran.err
    ran = cli("request", "--title", "Rotate keys", "--approver", MAYA, "--escalate-quorum", "1")
    assert ran.code == 3 and "--escalate-quorum needs --escalate-after" in ran.err
    ran = cli("request", "--title", "Rotate keys", "--approver", MAYA, "--escalate-after", "1h",
              "--escalate-to", FRANK, "--escalate-quorum", "3")
    assert ran.code == 3 and "escalate[0].quorum: 3 is more than the 1" in ran.err, ran
    ran = cli("request", "--title", "Rotate keys", "--approver", MAYA, "--approver", FRANK,
              "--quorum", "2", "--escalate-after", "1h", "--escalate-to", FRANK,
              "--escalate-quorum", "2")
    assert ran.code == 0, ran


def test_request_wait_sends_its_own_reminders_without_a_bot(cli: Cli, bot: BotStack) -> None:  # noqa: F811
    """No sweeper runs here: `--wait` itself sends the reminder between its wait slices."""
    done: dict[str, Ran] = {}
    waiting = threading.Thread(target=lambda: done.setdefault("ran", cli(
        "request", "--title", "Rotate keys", "--approver", MAYA, "--remind-every", "1s",
        "--remind-limit", "1", "--wait", env={"APPROVALS_WAIT_SLICE_SECONDS": "0.2"})))
    waiting.start()
    (request,) = bot.sandbox.wait_for(lambda: [r for r in bot.store.pending() if r.message_ts],
                                      timeout=30, what="the posted request")
    reply = bot.sandbox.wait_for(
        lambda: [m for m in bot.sandbox.messages(APPROVALS_CHANNEL)
                 if m.get("thread_ts") == request.message_ts and m["ts"] != request.message_ts],
        timeout=30, what="the reminder in the thread")
    assert f"<@{MAYA}>" in reply[0]["text"]
    bot.click(MAYA, bot.store.get(request.id), APPROVE_ACTION)
    waiting.join(timeout=30)
    assert done["ran"].code == 0, done
    assert bot.store.get(request.id).reminders_sent == 1


def test_pending_shows_the_quorum_in_force(cli: Cli, bot: BotStack) -> None:  # noqa: F811
    from tests.state.support import until_server_clock_reaches

    request = bot.post(approvers=[MAYA, FRANK], quorum=2,
                       escalate=[{"after": "PT1S", "to": [FINANCE_GROUP], "quorum": 1}])
    assert f"{request.id}" in (before := cli("pending").out) and "0/2" in before
    until_server_clock_reaches(bot.store.client, request.created_at + timedelta(seconds=1))
    ran = cli("pending")
    assert "0/1" in ran.out and "0/2" not in ran.out, ran
    assert "quorum 1" in cli("show", request.id).out
