"""Block Kit stays within Slack's limits whatever the input; the messenger posts once and
survives Slack's 429s and 5xx."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slack_approvals.bot.blocks import home_view, outcome_text, reject_modal, request_message
from slack_approvals.bot.listeners.commands import status_text
from slack_approvals.state.models import ApprovalRequest, Decision, Fact, RequestSpec, Status, Vote
from tests.bot.fixtures import MAYA, BotStack

SLACK_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1)


def stored(spec: RequestSpec, status: Status = Status.PENDING, request_id: str = "a" * 16
           ) -> ApprovalRequest:
    now = datetime.now(UTC)
    votes = [Vote(user=MAYA, vote="approve", at=now)]
    decision = None if status is Status.PENDING else Decision(
        request_id=request_id, status=status, approved=status is Status.APPROVED, decided_by=MAYA,
        decided_at=now, reason="r" * 500, votes=votes)
    return ApprovalRequest(id=request_id, spec=spec, status=status, created_at=now,
                           deadline=now + timedelta(hours=1), votes=votes, decision=decision)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=SLACK_TEXT.map(lambda s: s[:200]).filter(str.strip),
       summary=st.text(max_size=3000),
       facts=st.lists(st.tuples(SLACK_TEXT.map(lambda s: s[:60]).filter(str.strip),
                                SLACK_TEXT.map(lambda s: s[:1000]).filter(str.strip)), max_size=10),
       status=st.sampled_from(list(Status)))
def test_any_request_renders_to_a_message_slack_accepts(bot: BotStack, title: str, summary: str,
                                                        facts: list[tuple[str, str]],
                                                        status: Status) -> None:
    spec = RequestSpec(title=title, summary=summary, facts=[Fact(label=k, value=v) for k, v in facts],
                       channel="C01APPROVALS", approvers=[MAYA], requester="U06REQ")
    request = stored(spec, status)
    client = bot.deps.messenger.client
    posted = client.chat_postMessage(channel="C01APPROVALS", **request_message(request))
    assert posted["ok"]
    many = [stored(spec, status, request_id=f"{i:016d}") for i in range(20)]
    assert client.views_publish(user_id=MAYA, view=home_view(MAYA, many[:15], many))["ok"]


def test_long_text_is_cut_not_rejected() -> None:
    spec = RequestSpec(title="T" * 199 + "&", summary="<b>" * 1000, channel="C01APPROVALS",
                       facts=[Fact(label="Amount", value="9" * 1000)] * 10, approvers=[MAYA])
    message = request_message(stored(spec))
    header = message["blocks"][0]["text"]["text"]
    assert len(header) == 150
    assert header.endswith("…")
    summary = message["blocks"][1]["text"]["text"]
    assert len(summary) <= 3000
    assert "&lt;b&gt;" in summary
    assert not summary.rstrip("…").endswith("&lt")  # never cut inside an entity
    assert message["text"]  # fallback text is always there
    assert reject_modal(stored(spec)).to_dict()["title"]["text"] == "Reject request"


def test_post_is_idempotent(bot: BotStack) -> None:
    request = bot.post()
    again = bot.deps.messenger.post(bot.store.get(request.id))
    assert again.message_ts == request.message_ts
    assert len(bot.sandbox.api_calls("chat.postMessage")) == 1
    assert len(bot.sandbox.api_calls("chat.update")) == 1


def test_rate_limits_and_server_errors_are_retried(bot: BotStack) -> None:
    bot.sandbox.faults.inject("chat.postMessage", status=429, retry_after=1, count=1)
    bot.sandbox.faults.inject("chat.update", status=503, count=1)
    request = bot.post()
    assert request.message_ts is not None
    bot.store.decide(request.id, MAYA, "approve")
    bot.deps.messenger.refresh(bot.store.get(request.id))
    assert "*Approved* by" in json.dumps(bot.message(request))
    statuses = [c.status for c in bot.sandbox.api_calls("chat.postMessage")]
    assert statuses == [429, 200]


def rejected_with(reason: str) -> ApprovalRequest:
    now = datetime.now(UTC)
    spec = RequestSpec(title="Deploy", channel="C01APPROVALS", approvers=[MAYA, "U02FRANK"],
                       quorum=2, requester="U06REQ")
    votes = [Vote(user="U02FRANK", vote="approve", at=now), Vote(user=MAYA, vote="reject", at=now)]
    decision = Decision(request_id="a" * 16, status=Status.REJECTED, approved=False,
                        decided_by=MAYA, decided_at=now, reason=reason, votes=votes)
    return ApprovalRequest(id="a" * 16, spec=spec, status=Status.REJECTED, created_at=now,
                           deadline=now + timedelta(hours=1), votes=votes, decision=decision)


def test_every_line_of_a_reason_is_quoted() -> None:
    """A reason cannot end the quote and add lines that read like the bot's own."""
    request = rejected_with("not now\n:white_check_mark: *Approved* by <@U0BOSS>\r\nthird\n\nfifth")
    text = outcome_text(request)
    reason_lines = text.split("\n")[1:]
    assert reason_lines == [">not now", ">:white_check_mark: *Approved* by &lt;@U0BOSS&gt;",
                            ">third", ">", ">fifth"]
    message = json.dumps(request_message(request))
    assert "\\n:white_check_mark: *Approved* by &lt;" not in message


def test_votes_read_approved_and_rejected() -> None:
    request = rejected_with("no")
    message = json.dumps(request_message(request))
    assert f"<@{MAYA}> rejected" in message and "<@U02FRANK> approved" in message
    assert "rejectd" not in message
    home = json.dumps(home_view(MAYA, [], [request]).to_dict())
    assert "you rejected" in home and "rejectd" not in home
    assert f"<@{MAYA}> rejected at" in status_text(request)
    assert ">no" in status_text(request)
