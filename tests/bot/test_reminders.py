"""Reminders and escalation on the sandbox: thread replies naming only those who have not
voted, DMs whose buttons count, tiers whose people may vote, each action sent once by any
number of sweepers, and quiet hours held by an injectable clock."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_approvals.bot.client import make_client
from slack_approvals.bot.deps import BotDeps
from slack_approvals.bot.groups import GroupResolver
from slack_approvals.bot.home import publish_home
from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.bot.messenger import Messenger
from slack_approvals.bot.nudges import REMIND
from slack_approvals.bot.sweeper import Sweeper
from slack_approvals.state.models import ApprovalRequest, Status, ms_to_datetime
from slack_approvals.state.store import ApprovalStore
from tests.bot.fixtures import BOT_TOKEN, ERIN, FINANCE_GROUP, FRANK, MAYA, OLIVER, BotStack, flatten
from tests.bot.test_commands_home import slash
from tests.conftest import RedisServer
from tests.state.support import until_server_clock_reaches

EVERY = timedelta(seconds=1)
BERLIN_HOURS = {"days": "Mon-Fri", "from": "09:00", "to": "18:00", "tz": "Europe/Berlin"}


def thread_replies(bot: BotStack, request: ApprovalRequest) -> list[str]:
    assert request.message_channel
    return [m["text"] for m in bot.sandbox.messages(request.message_channel)
            if m.get("thread_ts") == request.message_ts and m["ts"] != request.message_ts]


def dms(bot: BotStack, user: str) -> list[dict[str, Any]]:
    return bot.sandbox.messages(user)


def until_due(bot: BotStack, kind: str, request: ApprovalRequest) -> None:
    score = bot.store.client.zscore(bot.store.plans.keys.schedule(kind), request.id)
    assert score is not None, f"no {kind} scheduled for {request.id}"
    until_server_clock_reaches(bot.store.client, ms_to_datetime(int(score)))


def test_reminders_name_only_who_has_not_voted_and_stop_at_the_limit(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA], approver_groups=[FINANCE_GROUP], quorum=2,
                       remind_every=EVERY, remind_limit=2)
    bot.click(MAYA, request, APPROVE_ACTION)
    bot.wait_message(request, "1 of 2 approvals")
    for n in (1, 2):
        until_due(bot, "remind", request)
        bot.sweeper.sweep_once()
        replies = thread_replies(bot, request)
        assert len(replies) == n
        # Finance is Frank and Maya; Maya voted, so only Frank is named.
        assert f"<@{FRANK}>" in replies[-1] and f"<@{MAYA}>" not in replies[-1]
        assert f"Reminder {n} of 2" in replies[-1]
    assert bot.store.client.zscore(bot.store.plans.keys.schedule("remind"), request.id) is None
    bot.sweeper.sweep_once()
    assert len(thread_replies(bot, request)) == 2
    assert len(dms(bot, FRANK)) == 2 and dms(bot, MAYA) == []
    assert bot.store.get(request.id).reminders_sent == 2
    # Frank's DM channel was opened for the first reminder and remembered for the second.
    assert [c.args.get("users") for c in bot.sandbox.api_calls("conversations.open")] == [FRANK]


def test_a_vote_from_the_reminder_dm_counts_and_edits_the_channel_message(bot: BotStack) -> None:
    request = bot.post(remind_every=EVERY)
    until_due(bot, "remind", request)
    bot.sweeper.sweep_once()
    (dm,) = dms(bot, FRANK)
    assert "waiting for your vote" in flatten(dm)
    bot.sandbox.click(FRANK, FRANK, dm["ts"], APPROVE_ACTION)  # in Frank's DM with the bot
    bot.wait_message(request, "Approved")
    assert bot.store.get(request.id).status is Status.APPROVED
    # Nothing more after the decision.
    bot.store.client.zadd(bot.store.plans.keys.schedule("remind"), {request.id: 0})
    bot.sweeper.sweep_once()
    assert len(thread_replies(bot, request)) == 1


def test_an_escalated_approvers_click_counts(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA], remind_every=timedelta(minutes=5),
                       escalate=[{"after": "PT1S", "to": [OLIVER]}])
    bot.click(OLIVER, request, APPROVE_ACTION)
    bot.wait_ephemeral(OLIVER, "not")  # not an approver yet
    until_due(bot, "escalate", request)
    bot.sweeper.sweep_once()
    shown = bot.wait_message(request, "Escalated to")
    assert f"<@{OLIVER}>" in shown
    (reply,) = thread_replies(bot, request)
    assert f"<@{OLIVER}>" in reply and "Escalated" in reply
    (dm,) = dms(bot, OLIVER)
    bot.sandbox.click(OLIVER, OLIVER, dm["ts"], APPROVE_ACTION)
    bot.wait_message(request, "Approved")
    events = [e.event for e in bot.store.audit(request.id)]
    assert events.index("escalated") < events.index("vote")


def test_a_tier_counts_at_its_time_before_the_sweeper_announces_it(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA], escalate=[{"after": "PT1S", "to": [ERIN]}])
    until_due(bot, "escalate", request)
    bot.click(ERIN, request, APPROVE_ACTION)
    bot.wait_message(request, "Approved")


def second_bot(redis_server: RedisServer, sandbox_url: str) -> Sweeper:
    """Another bot process's sweeper: its own Redis connection, Slack client and caches."""
    store = ApprovalStore(redis_server.client(), retention=timedelta(days=1))
    client = make_client(BOT_TOKEN, sandbox_url)
    deps = BotDeps(store=store, messenger=Messenger(client, store), groups=GroupResolver(client))
    return Sweeper(deps, 60)


def test_two_sweepers_on_one_redis_send_each_reminder_once(bot: BotStack,
                                                           redis_server: RedisServer) -> None:
    requests = [bot.post(remind_every=EVERY, remind_limit=1) for _ in range(6)]
    other = second_bot(redis_server, bot.sandbox.api_url)
    until_due(bot, "remind", requests[-1])
    start = threading.Barrier(2)

    def sweep(sweeper: Sweeper) -> None:
        start.wait()
        sweeper.sweep_once()

    threads = [threading.Thread(target=sweep, args=(s,)) for s in (bot.sweeper, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for request in requests:
        assert len(thread_replies(bot, request)) == 1
    assert len(dms(bot, FRANK)) == 6
    other.deps.background.shutdown(wait=True)


def test_a_sweeper_started_after_the_due_time_sends_it_once(bot: BotStack,
                                                            redis_server: RedisServer) -> None:
    request = bot.post(remind_every=EVERY)
    until_due(bot, "remind", request)
    until_server_clock_reaches(bot.store.client, request.created_at + 2 * EVERY)
    late = second_bot(redis_server, bot.sandbox.api_url)
    late.sweep_once()
    late.sweep_once()
    assert len(thread_replies(bot, request)) == 1
    late.deps.background.shutdown(wait=True)


def test_quiet_hours_hold_a_reminder_until_business_hours(bot: BotStack) -> None:
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    monday_open = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    now = [saturday]
    sweeper = Sweeper(bot.deps, 60, clock=lambda: now[0])
    request = bot.post(remind_every=EVERY, business_hours=BERLIN_HOURS)
    until_due(bot, "remind", request)
    sweeper.sweep_once()
    assert thread_replies(bot, request) == []
    held = bot.store.client.zscore(bot.store.plans.keys.schedule("remind"), request.id)
    assert held == monday_open.timestamp() * 1000
    # Business hours come: the entry falls due (moved here as time would move it).
    now[0] = monday_open + timedelta(minutes=1)
    bot.store.client.zadd(bot.store.plans.keys.schedule("remind"), {request.id: 0})
    sweeper.sweep_once()
    assert len(thread_replies(bot, request)) == 1


def test_status_and_app_home_show_reminders_tiers_and_waiting_time(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA], remind_every=EVERY, remind_limit=3,
                       escalate=[{"after": "PT1S", "to": [OLIVER]},
                                 {"after": "PT1H", "to": [FINANCE_GROUP]}])
    assert "Nothing needs your decision" in flatten(home_of(bot, OLIVER))
    until_due(bot, "escalate", request)
    until_due(bot, "remind", request)
    bot.sweeper.sweep_once()
    status = slash(bot, MAYA, f"status {request.id}")
    assert "Reminders sent: 1 of 3, every 1s" in status
    assert "Escalation: 1 of 2 tiers reached" in status and f"<@{OLIVER}>" in status
    # The reached tier's approver now finds it in App Home, with how long it has waited.
    home = flatten(home_of(bot, OLIVER))
    assert request.id in home and re.search(r"waiting \ds", home)
    assert "escalated" in home
    # Oliver was named by the reminder too, being eligible now.
    assert f"<@{OLIVER}>" in thread_replies(bot, request)[-1]


def home_of(bot: BotStack, user: str) -> dict[str, Any]:
    publish_home(bot.deps, user)
    view = bot.sandbox.home_view(user)
    assert view is not None
    return view


def test_a_tier_lowering_the_quorum_lets_one_click_approve(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA, FRANK], quorum=2,
                       escalate=[{"after": "PT1S", "to": [OLIVER], "quorum": 1}])
    assert "0 of 2 approvals" in bot.message_text(request)
    assert "then 1 approval needed" in slash(bot, MAYA, f"status {request.id}")
    until_due(bot, "escalate", request)
    # No sweeper has announced the tier: the click alone is judged by the tier's quorum.
    bot.click(MAYA, request, APPROVE_ACTION)
    shown = bot.wait_message(request, "Approved")
    assert f"<@{MAYA}>" in shown
    assert bot.store.get(request.id).decision is not None


def test_the_sweeper_approves_when_a_tier_lowers_the_quorum_to_the_approvals_in(
        bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA, FRANK], quorum=2,
                       escalate=[{"after": "PT1S", "to": [OLIVER], "quorum": 1}])
    bot.click(MAYA, request, APPROVE_ACTION)
    bot.wait_message(request, "1 of 2 approvals")
    waited: dict[str, Any] = {}
    # A gate waiting on the request wakes when the sweeper closes it, with no vote after.
    waiter = threading.Thread(target=lambda: waited.setdefault(
        "decision", bot.store.wait(request.id, 30)))
    waiter.start()
    until_due(bot, "escalate", request)
    bot.sweeper.sweep_once()
    waiter.join(timeout=30)
    decision = waited["decision"]
    assert decision is not None and decision.approved and decision.decided_by is None
    shown = bot.wait_message(request, "Approved")
    assert "escalation tier 1 lowered the quorum to 1 and 1 approval was already counted" in shown
    last = bot.store.audit(request.id)[-1]
    assert last.event == "approved" and last.reason is not None and "tier 1" in last.reason
    # Closed before the tier was announced: nobody is told to vote on it.
    assert dms(bot, OLIVER) == [] and thread_replies(bot, request) == []
    assert "1 of 1 approval" in slash(bot, MAYA, f"status {request.id}")


def test_a_reminder_slack_did_not_take_is_sent_again_once(bot: BotStack) -> None:
    request = bot.post(remind_every=EVERY, remind_limit=1)
    bot.sweeper.nudger.resend_after = timedelta(0)  # at the next sweep
    until_due(bot, "remind", request)
    # Rate limited through every retry of the client: Slack did not post the thread reply.
    bot.sandbox.faults.inject("chat.postMessage", 429, count=4, retry_after=0)
    bot.sweeper.sweep_once()
    assert thread_replies(bot, request) == []
    assert len(dms(bot, MAYA)) == 1 and len(dms(bot, FRANK)) == 1  # those went out
    bot.sweeper.sweep_once()
    (reply,) = thread_replies(bot, request)
    assert "Reminder 1 of 1" in reply
    assert len(dms(bot, MAYA)) == 1 and len(dms(bot, FRANK)) == 1  # not sent twice
    bot.sweeper.sweep_once()
    assert len(thread_replies(bot, request)) == 1
    assert [e.event for e in bot.store.audit(request.id)].count("reminded") == 1


def test_a_reminder_slack_may_have_taken_is_not_sent_again(bot: BotStack) -> None:
    request = bot.post(remind_every=EVERY, remind_limit=1)
    bot.sweeper.nudger.resend_after = timedelta(0)
    until_due(bot, "remind", request)
    # One 5xx: the post may have landed, so neither the client nor the sweeper repeats it.
    bot.sandbox.faults.inject("chat.postMessage", 500, count=1)
    bot.sweeper.sweep_once()
    assert bot.sandbox.faults.pending() == {}
    assert len(dms(bot, MAYA)) == 1 and len(dms(bot, FRANK)) == 1
    bot.sweeper.sweep_once()
    assert thread_replies(bot, request) == []
    assert len(dms(bot, MAYA)) == 1
    assert "remind_owed" not in bot.store.client.hgetall(bot.store.plans.keys.state(request.id))


# -- settled by a tier, quiet hours, one bad request, a long queue ------------------------------


def test_a_click_on_a_request_a_tier_settled_is_told_its_vote_was_not_recorded(
        bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA, FRANK], quorum=2,
                       escalate=[{"after": "PT1S", "to": [OLIVER], "quorum": 1}])
    bot.click(MAYA, request, APPROVE_ACTION)
    bot.wait_message(request, "1 of 2 approvals")
    until_due(bot, "escalate", request)
    # Erin may not even vote; her click finds the request approved by the tier at its time.
    bot.click(ERIN, request, APPROVE_ACTION)
    told = bot.wait_ephemeral(ERIN, "your vote was not recorded")
    assert "already approved (escalation tier 1 lowered the quorum to 1" in told
    bot.wait_message(request, "Approved")
    assert [v.user for v in bot.store.get(request.id).votes] == [MAYA]


def test_quiet_hours_do_not_hold_a_later_tiers_settlement(bot: BotStack) -> None:
    saturday = datetime(2036, 11, 29, 12, 0, tzinfo=UTC)  # far ahead: next open is later still
    sweeper = Sweeper(bot.deps, 60, clock=lambda: saturday)
    request = bot.post(approvers=[MAYA, FRANK], quorum=2, business_hours=BERLIN_HOURS,
                       escalate=[{"after": "PT1S", "to": [OLIVER]},
                                 {"after": "PT3S", "to": [ERIN], "quorum": 1}])
    bot.click(MAYA, request, APPROVE_ACTION)
    bot.wait_message(request, "1 of 2 approvals")
    until_due(bot, "escalate", request)
    sweeper.sweep_once()
    assert thread_replies(bot, request) == []  # the first tier's announcement is held ...
    held = bot.store.client.zscore(bot.store.plans.keys.schedule("escalate"), request.id)
    # ... until the second tier's time, not Monday: its settlement is a decision.
    assert held == (request.created_at + timedelta(seconds=3)).timestamp() * 1000
    until_due(bot, "escalate", request)
    sweeper.sweep_once()
    assert bot.store.get(request.id).status is Status.APPROVED
    bot.wait_message(request, "Approved")
    assert thread_replies(bot, request) == []


def test_a_corrupt_request_is_skipped_and_unscheduled_and_spares_its_batch(
        bot: BotStack) -> None:
    good, bad = (bot.post(remind_every=EVERY, remind_limit=1) for _ in range(2))
    bot.store.client.set(bot.store.plans.keys.spec(bad.id), "{not json")
    until_due(bot, "remind", good)
    until_due(bot, "remind", bad)
    bot.sweeper.sweep_once()
    assert len(thread_replies(bot, good)) == 1
    assert bot.store.client.zscore(bot.store.plans.keys.schedule("remind"), bad.id) is None


def test_a_failing_phase_does_not_skip_the_later_ones(bot: BotStack) -> None:
    overdue = bot.post(timeout="PT1S")
    # Unreadable once closed: the deadlines phase fails on it, every sweep.
    bot.store.client.hset(bot.store.plans.keys.state(overdue.id), "created_ms", "yesterday")
    reminded = bot.post(remind_every=EVERY, remind_limit=1)
    until_server_clock_reaches(bot.store.client, overdue.deadline)
    until_due(bot, "remind", reminded)
    bot.sweeper.sweep_once()
    assert len(thread_replies(bot, reminded)) == 1


def test_one_sweep_sends_only_what_its_time_allows_the_rest_next(bot: BotStack) -> None:
    requests = [bot.post(remind_every=EVERY, remind_limit=1) for _ in range(3)]
    for request in requests:
        until_due(bot, "remind", request)
    nudger = bot.sweeper.nudger
    # No time left after the first claim: one request now, the others at the next sweeps.
    assert nudger.run_due(REMIND, limit=1, budget=timedelta(0)) == 1
    assert sum(len(thread_replies(bot, r)) for r in requests) == 1
    assert nudger.run_due(REMIND, limit=1, budget=timedelta(0)) == 1
    assert nudger.run_due(REMIND, limit=1) == 1
    assert all(len(thread_replies(bot, r)) == 1 for r in requests)


def test_an_escalation_slack_did_not_take_is_sent_again_once(bot: BotStack) -> None:
    request = bot.post(approvers=[MAYA], escalate=[{"after": "PT1S", "to": [OLIVER]}])
    bot.sweeper.nudger.resend_after = timedelta(0)  # at the next sweep
    until_due(bot, "escalate", request)
    # Rate limited through every retry: Slack did not post the announcement in the thread.
    bot.sandbox.faults.inject("chat.postMessage", 429, count=4, retry_after=0)
    bot.sweeper.sweep_once()
    assert thread_replies(bot, request) == []
    assert len(dms(bot, OLIVER)) == 1  # the DM went out
    bot.sweeper.sweep_once()
    (reply,) = thread_replies(bot, request)
    assert f"Escalated to <@{OLIVER}>" in reply
    assert len(dms(bot, OLIVER)) == 1  # not sent twice
    bot.sweeper.sweep_once()
    assert len(thread_replies(bot, request)) == 1
    assert [e.event for e in bot.store.audit(request.id)].count("escalated") == 1
