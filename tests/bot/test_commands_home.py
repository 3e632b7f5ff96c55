"""`/approvals` subcommands and their errors, and the App Home tab."""

from __future__ import annotations

from datetime import timedelta

from slack_approvals.bot.ids import APPROVE_ACTION
from slack_approvals.bot.listeners.commands import handle_command
from slack_approvals.state.models import RequestSpec, Status
from tests.bot.fixtures import (
    APPROVALS_CHANNEL,
    ERIN,
    FRANK,
    MAYA,
    OLIVER,
    RILEY,
    SARA,
    BotStack,
    flatten,
)


def last_ephemeral(bot: BotStack, user: str) -> str:
    return bot.sandbox.wait_for(lambda: [flatten(e) for e in bot.sandbox.ephemerals(user)],
                                what="an ephemeral answer")[-1]


def slash(bot: BotStack, user: str, text: str, channel: str = APPROVALS_CHANNEL) -> str:
    before = len(bot.sandbox.ephemerals(user))
    result = bot.sandbox.slash(user, channel, "/approvals", text)
    assert result.status == 200
    answers = bot.sandbox.wait_for(
        lambda: [flatten(e) for e in bot.sandbox.ephemerals(user)][before:] or None,
        what=f"answer to /approvals {text}")
    return answers[-1]


def test_help_and_empty_text(bot: BotStack) -> None:
    assert "status <id>" in slash(bot, MAYA, "help")
    assert "status <id>" in slash(bot, MAYA, "")


def test_list_shows_only_what_the_caller_may_decide_with_buttons(bot: BotStack) -> None:
    mine = bot.post(title="Pay invoice 42", approvers=[MAYA])
    bot.post(title="Not for Maya", approvers=[FRANK])
    text = slash(bot, MAYA, "list")
    assert "Pay invoice 42" in text
    assert "Not for Maya" not in text
    ephemeral = bot.sandbox.ephemerals(MAYA)[-1]
    # The buttons in the list work like the message's own.
    bot.sandbox.click(MAYA, APPROVALS_CHANNEL, ephemeral["ts"], APPROVE_ACTION, value=mine.id)
    bot.wait_message(mine, "*Approved* by")
    assert "Nothing is waiting" in slash(bot, ERIN, "list")


def test_status_shows_state_votes_and_deadline(bot: BotStack) -> None:
    request = bot.post(quorum=2)
    bot.store.decide(request.id, MAYA, "approve")
    text = slash(bot, ERIN, f"status {request.id}")
    assert "pending" in text
    assert f"<@{MAYA}> approved" in text
    assert "1 of 2 approvals" in text
    assert "<!date^" in text


def test_cancel_is_for_the_requester_only(bot: BotStack) -> None:
    request = bot.post()
    assert "Only the requester" in slash(bot, MAYA, f"cancel {request.id}")
    assert bot.store.get(request.id).status is Status.PENDING
    assert "Cancelled" in slash(bot, RILEY, f"cancel {request.id} plans changed")
    bot.wait_message(request, "*Cancelled* by")
    assert "plans changed" in bot.message_text(request)
    assert "already cancelled" in slash(bot, RILEY, f"cancel {request.id}")


def test_run_starts_a_flow_and_answers_with_its_run_id(bot: BotStack) -> None:
    listing = slash(bot, MAYA, "run")
    assert "deploy-approval" in listing
    bot.sandbox.slash(MAYA, APPROVALS_CHANNEL, "/approvals", "run deploy-approval version=v1.2.3")
    answer = bot.sandbox.wait_for(
        lambda: next((flatten(e) for e in bot.sandbox.ephemerals(MAYA) if "run-1" in flatten(e)),
                     None), what="flow run id")
    assert "Started `deploy-approval`" in answer
    assert bot.launcher.launched == [("deploy-approval", {"version": "v1.2.3"}, MAYA)]


def test_command_errors_are_specific_and_show_usage(bot: BotStack) -> None:
    cases = {
        "frobnicate": "`frobnicate` is not a subcommand",
        "status": "needs a request id",
        "status not-an-id": "is not a request id",
        "status 0000000000000000": "There is no approval request",
        "cancel 0000000000000000": "There is no approval request",
        "run nope": "There is no flow `nope`",
        "run deploy-approval version": "is not a `key=value` pair",
        "run deploy-approval Version=1": "is not a `key=value` pair",
        "run deploy-approval a=1 a=2": "`a` is given twice",
        "run deploy-approval version=1.2": "version: must look like v1.2.3",
        'status "unclosed': "Could not read the command",
        "list extra": "takes no arguments",
    }
    for text, expected in cases.items():
        answer = slash(bot, MAYA, text)
        assert expected in answer, (text, answer)
        assert "Usage:" in answer, text
    assert bot.launcher.launched == []


def test_run_without_a_launcher_says_so() -> None:
    answers: list[dict[str, object]] = []

    class Deps:
        launcher = None

    handle_command(lambda **kw: answers.append(kw), {"text": "run deploy-approval",  # type: ignore[arg-type]
                                                     "user_id": MAYA, "channel_id": "C1"},
                   lambda **kw: None, Deps())  # type: ignore[arg-type]
    assert "not enabled" in str(answers[0]["text"])


def test_app_home_lists_pending_and_recent_decisions(bot: BotStack) -> None:
    waiting = bot.post(title="Rotate database password", approvers=[MAYA])
    done = bot.post(title="Pay invoice 7", approvers=[MAYA])
    bot.store.decide(done.id, MAYA, "approve")
    bot.sandbox.open_home(MAYA)
    home = bot.sandbox.wait_for(lambda: bot.sandbox.home_view(MAYA), what="home view")
    text = flatten(home)
    assert "Rotate database password" in text
    assert "you approved" in text
    assert "Pay invoice 7" in text
    bot.sandbox.click_home(MAYA, APPROVE_ACTION, value=waiting.id)
    bot.wait_message(waiting, "*Approved* by")
    home = bot.sandbox.wait_for(
        lambda: (h := bot.sandbox.home_view(MAYA)) and "Nothing needs your decision" in flatten(h)
        and h, what="home refreshed")
    assert "Rotate database password" in flatten(home)  # now among recent decisions


def test_requests_open_to_anyone_are_not_listed_to_everyone(bot: BotStack) -> None:
    bot.post(title="Open to the channel", approvers=[], approver_groups=[])
    assert "Nothing is waiting" in slash(bot, ERIN, "list")


ENG_LEADS = "S02ENGLEADS"  # Erin and Oliver in the sandbox's directory
ELSEWHERE = "C03ENG"


def test_status_is_shown_only_to_those_involved_and_in_its_channel(bot: BotStack) -> None:
    request = bot.post(title="Secret merger", approvers=[MAYA], approver_groups=[ENG_LEADS])
    never_created = "0000000000000000"

    def answer_text(text: str) -> str:
        slash(bot, SARA, text, ELSEWHERE)
        return str(bot.sandbox.ephemerals(SARA)[-1]["text"])

    unknown = answer_text(f"status {never_created}")
    hidden = answer_text(f"status {request.id}")
    assert "Secret merger" not in hidden and "There is no approval request" in hidden
    assert hidden == unknown.replace(never_created, request.id)
    assert answer_text(f"cancel {request.id}") == hidden
    for user in (RILEY, MAYA, OLIVER):  # requester, named approver, approver by group
        assert "Secret merger" in slash(bot, user, f"status {request.id}", ELSEWHERE), user
    # Anyone in the channel it was posted in already sees the message itself.
    assert "Secret merger" in slash(bot, SARA, f"status {request.id}")
    assert bot.store.get(request.id).status is Status.PENDING


def test_own_requests_are_listed_however_many_others_wait(bot: BotStack) -> None:
    for _ in range(850):  # soonest deadlines first: they used to fill the whole read
        bot.store.create(RequestSpec(title="For Frank", channel=APPROVALS_CHANNEL,
                                     approvers=[FRANK], timeout=timedelta(minutes=5)))
    bot.post(title="Maya's own", approvers=[MAYA])
    bot.post(title="For the eng leads", approvers=[], approver_groups=[ENG_LEADS])
    assert "Maya's own" in slash(bot, MAYA, "list")
    assert "For the eng leads" in slash(bot, ERIN, "list")
    bot.sandbox.open_home(ERIN)
    home = bot.sandbox.wait_for(lambda: bot.sandbox.home_view(ERIN), what="home view")
    assert "For the eng leads" in flatten(home)
