"""Clicks delivered by the sandbox, signed as Slack signs them, to the bot's HTTP endpoint."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from slack_approvals.bot.blocks import parse_modal_metadata
from slack_approvals.bot.ids import APPROVE_ACTION, REASON_BLOCK, REJECT_ACTION
from slack_approvals.state.models import DecideStatus, Status
from tests.bot.fixtures import ERIN, FINANCE_GROUP, FRANK, MAYA, OLIVER, RILEY, BotStack


def test_approve_to_quorum_edits_the_message(bot: BotStack) -> None:
    request = bot.post(quorum=2)
    assert "1 of 2" not in bot.message_text(request)
    assert bot.click(MAYA, request, APPROVE_ACTION).status == 200
    assert bot.store.get(request.id).status is Status.PENDING  # stored before the ack returned
    text = bot.wait_message(request, "Approved so far")
    assert "1 of 2 approvals" in text
    assert APPROVE_ACTION in str(bot.message(request)["blocks"])  # buttons still there

    assert bot.click(FRANK, request, APPROVE_ACTION).status == 200
    text = bot.wait_message(request, "*Approved* by")
    assert f"<@{FRANK}>" in text
    assert APPROVE_ACTION not in str(bot.message(request)["blocks"])  # buttons gone
    assert bot.store.get(request.id).status is Status.APPROVED
    bot.sandbox.wait_for(lambda: bot.decided, what="on_decision hook")
    assert bot.decided[0].id == request.id


def test_reject_needs_a_reason_given_in_a_modal(bot: BotStack) -> None:
    request = bot.post()
    assert bot.click(FRANK, request, REJECT_ACTION).status == 200
    modal = bot.sandbox.wait_for(lambda: bot.sandbox.open_view(FRANK), what="reject modal")
    assert parse_modal_metadata(modal["private_metadata"]) == (request.id, False)

    blank = bot.sandbox.submit_view(FRANK, values={REASON_BLOCK: "   "})
    # Whitespace passes Slack's min_length, so the bot itself answers response_action=errors.
    assert "reason" in bot.sandbox.modal_errors(FRANK).get(REASON_BLOCK, "").lower() or blank.errors
    assert bot.store.get(request.id).status is Status.PENDING

    bot.sandbox.submit_view(FRANK, values={REASON_BLOCK: "Freeze week: no deploys"})
    assert bot.sandbox.open_view(FRANK) is None
    text = bot.wait_message(request, "*Rejected* by")
    assert "Freeze week: no deploys" in text
    decision = bot.store.get(request.id).decision
    assert decision is not None and decision.reason == "Freeze week: no deploys"
    assert decision.decided_by == FRANK


def test_each_refusal_tells_the_clicker_why_and_changes_nothing(bot: BotStack) -> None:
    request = bot.post(quorum=2)
    bot.click(ERIN, request, APPROVE_ACTION)
    assert "not one of the approvers" in bot.wait_ephemeral(ERIN, "approvers")

    own = bot.post(approvers=[RILEY, MAYA], quorum=1)
    bot.click(RILEY, own, APPROVE_ACTION)
    assert "cannot approve it yourself" in bot.wait_ephemeral(RILEY, "yourself")

    bot.click(MAYA, request, APPROVE_ACTION)
    bot.wait_message(request, "Approved so far")
    bot.click(MAYA, request, APPROVE_ACTION)
    assert "already voted" in bot.wait_ephemeral(MAYA, "already voted")

    bot.click(FRANK, request, APPROVE_ACTION)
    bot.wait_message(request, "*Approved* by")
    # The message no longer has buttons; an older copy (e.g. /approvals list) still might.
    listed = bot.post(approvers=[MAYA, OLIVER])
    bot.store.decide(listed.id, OLIVER, "approve")
    bot.click(MAYA, listed, APPROVE_ACTION)
    assert "already approved" in bot.wait_ephemeral(MAYA, "already approved")

    late = bot.post(timeout=timedelta(milliseconds=300))
    time.sleep(0.4)
    bot.click(MAYA, late, APPROVE_ACTION)
    assert "deadline" in bot.wait_ephemeral(MAYA, "deadline")
    bot.wait_message(late, "*Timed out*")

    assert [v.user for v in bot.store.get(request.id).votes] == [MAYA, FRANK]
    assert bot.store.get(own.id).votes == []


def test_a_button_naming_an_unknown_request_is_refused(bot: BotStack) -> None:
    posted = bot.deps.messenger.client.chat_postMessage(
        channel="C01APPROVALS", text="forged",
        blocks=[{"type": "actions", "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "value": "zzzzzzzzzzzzzzzz",
             "text": {"type": "plain_text", "text": "Approve"}}]}])
    bot.sandbox.click(MAYA, "C01APPROVALS", str(posted["ts"]), APPROVE_ACTION)
    assert "no approval request" in bot.wait_ephemeral(MAYA, "no approval request")


def test_a_button_value_naming_another_request_is_judged_by_that_request(bot: BotStack) -> None:
    mine = bot.post(approvers=[ERIN])
    theirs = bot.post(approvers=[MAYA])
    forged = bot.deps.messenger.client.chat_postMessage(
        channel="C01APPROVALS", text="forged",
        blocks=[{"type": "actions", "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "value": theirs.id,
             "text": {"type": "plain_text", "text": "Approve"}}]}])
    bot.sandbox.click(ERIN, "C01APPROVALS", str(forged["ts"]), APPROVE_ACTION)
    bot.wait_ephemeral(ERIN, "not one of the approvers")
    assert bot.store.get(theirs.id).votes == []
    assert bot.store.get(mine.id).votes == []


def test_group_members_may_approve(bot: BotStack) -> None:
    request = bot.post(approvers=[], approver_groups=[FINANCE_GROUP])
    bot.click(ERIN, request, APPROVE_ACTION)
    bot.wait_ephemeral(ERIN, "not one of the approvers")
    bot.click(FRANK, request, APPROVE_ACTION)  # Frank is in finance-approvers
    bot.wait_message(request, "*Approved* by")


def test_a_failed_group_lookup_says_so_and_records_nothing(bot: BotStack) -> None:
    request = bot.post(approvers=[], approver_groups=[FINANCE_GROUP])
    # More failures than the client's retries: the lookup fails for this click.
    bot.sandbox.faults.inject("usergroups.users.list", status=500, count=5)
    bot.click(FRANK, request, APPROVE_ACTION)
    told = bot.wait_ephemeral(FRANK, "try again")
    assert "could not tell whether you are in an approver group" in told
    assert "not one of the approvers" not in told
    assert bot.store.get(request.id).votes == []
    bot.sandbox.faults.clear()
    bot.click(FRANK, request, APPROVE_ACTION)  # the failure was not cached
    bot.wait_message(request, "*Approved* by")


def test_open_request_lets_anyone_in_the_channel_decide(bot: BotStack) -> None:
    request = bot.post(approvers=[], approver_groups=[])
    assert "anyone in the channel" in bot.message_text(request)
    bot.click(OLIVER, request, APPROVE_ACTION)
    bot.wait_message(request, "*Approved* by")


def test_double_click_and_simultaneous_clicks(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA, FRANK, OLIVER], quorum=2)
    barrier = threading.Barrier(4)
    statuses: list[int | None] = []

    def click(user: str) -> None:
        barrier.wait()
        statuses.append(bot.click(user, request, APPROVE_ACTION).status)

    threads = [threading.Thread(target=click, args=(u,)) for u in (MAYA, MAYA, FRANK, OLIVER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200, 200, 200, 200]
    final = bot.store.get(request.id)
    assert final.status is Status.APPROVED
    assert len(final.votes) == 2  # quorum reached by two; the third and the double are refused
    finals = [e for e in bot.store.audit(request.id) if e.event == "approved"]
    assert len(finals) == 1


def test_timeout_sweep_edits_the_message(bot: BotStack) -> None:
    request = bot.post(timeout=timedelta(milliseconds=200))
    time.sleep(0.3)
    assert bot.sweeper.sweep_once() == 1
    text = bot.wait_message(request, "*Timed out*")
    assert "rejected by default" in text
    assert bot.store.decide(request.id, MAYA, "approve").status is DecideStatus.CLOSED


def test_a_group_slack_cannot_resolve_fails_closed(bot: BotStack) -> None:
    request = bot.post(approvers=[], approver_groups=["S09UNKNOWN"])
    assert bot.click(FRANK, request, APPROVE_ACTION).status == 200
    bot.wait_ephemeral(FRANK, "not one of the approvers")
    assert bot.store.get(request.id).votes == []


def test_refusals_escape_the_title(bot: BotStack) -> None:
    request = bot.post(title="<https://evil.example|click me> & co", approvers=[MAYA])
    bot.click(ERIN, request, APPROVE_ACTION)
    text = bot.wait_ephemeral(ERIN, "not one of the approvers")
    assert "&lt;https://evil.example|click me&gt; &amp; co" in text


def test_a_decision_on_a_run_that_is_gone_says_so_to_the_clicker(bot: BotStack) -> None:
    request = bot.post(flow_run_id="0f5c1d2e-run-cancelled", approvers=[MAYA])
    bot.launcher.gone["0f5c1d2e-run-cancelled"] = "Cancelled"
    asking = threading.Event()
    slow_answer = bot.launcher.run_gone

    def slow(flow_run_id: str) -> str | None:
        asking.set()
        time.sleep(1.5)  # Prefect at its slowest: the click is acknowledged long before
        return slow_answer(flow_run_id)

    bot.launcher.run_gone = slow  # type: ignore[method-assign]
    started = time.monotonic()
    assert bot.click(MAYA, request, APPROVE_ACTION).status == 200
    assert time.monotonic() - started < 1.0
    assert bot.store.get(request.id).status is Status.APPROVED  # the decision stands
    bot.wait_message(request, "*Approved* by")
    text = bot.wait_ephemeral(MAYA, "is gone", timeout=10)
    assert asking.is_set()
    assert "`0f5c1d2e-run-cancelled` is Cancelled" in text
    assert "Deploy api v2.3.1" in text and "changes nothing" in text


def test_a_decision_on_a_waiting_run_or_a_vote_short_of_quorum_says_nothing_more(
        bot: BotStack) -> None:
    waiting = bot.post(flow_run_id="run-waiting", approvers=[MAYA])
    partial = bot.post(flow_run_id="run-partial", quorum=2)
    no_run = bot.post(approvers=[FRANK])
    bot.launcher.gone["run-partial"] = "Crashed"
    bot.click(MAYA, waiting, APPROVE_ACTION)
    bot.click(MAYA, partial, APPROVE_ACTION)
    bot.click(FRANK, no_run, APPROVE_ACTION)
    bot.wait_message(waiting, "*Approved* by")
    bot.wait_message(partial, "Approved so far")
    bot.wait_message(no_run, "*Approved* by")
    bot.sandbox.wait_for(lambda: bot.launcher.asked, what="the launcher asked about the run")
    time.sleep(0.5)  # room for an ephemeral that must not come
    assert bot.launcher.asked == ["run-waiting"]  # only final decisions on a flow's request
    assert bot.sandbox.ephemerals(MAYA) == [] and bot.sandbox.ephemerals(FRANK) == []


def test_a_decision_that_resumes_a_suspended_parent_is_checked_against_that_run(
        bot: BotStack) -> None:
    # A department's request: asked by a child run that ended (Failed) on purpose; the
    # decision resumes the parent suspended on it, which is the run that counts.
    request = bot.post(flow_run_id="child-run-failed", approvers=[MAYA])
    assert bot.store.suspend(request.id, "parent-run-suspended",
                             datetime.now(UTC) + timedelta(seconds=30)) is not None
    bot.launcher.gone["child-run-failed"] = "Failed"
    bot.click(MAYA, request, APPROVE_ACTION)
    bot.wait_message(request, "*Approved* by")
    bot.sandbox.wait_for(lambda: bot.launcher.asked, what="the launcher asked about the run")
    assert bot.launcher.asked == ["parent-run-suspended"]
    time.sleep(0.5)  # room for an ephemeral that must not come
    assert bot.sandbox.ephemerals(MAYA) == []
