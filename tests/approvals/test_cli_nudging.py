"""`approvals request --remind-every --escalate-after --escalate-to`."""

from __future__ import annotations

from datetime import timedelta

from tests.approvals.test_cli_errors import Cli, cli  # noqa: F401  (the fixture)
from tests.bot.fixtures import FINANCE_GROUP, FRANK, MAYA, BotStack


def test_request_with_reminders_and_one_escalation_tier(cli: Cli, bot: BotStack) -> None:  # noqa: F811
    ran = cli("request", "--title", "Rotate keys", "--approver", MAYA, "--remind-every", "30m",
              "--remind-limit", "2", "--escalate-after", "4h", "--escalate-to", FRANK,
              "--escalate-to", FINANCE_GROUP)
    assert ran.code == 0, ran
    spec = bot.store.get(ran.out.split()[0]).spec
    assert (spec.remind_every, spec.remind_limit) == (timedelta(minutes=30), 2)
    assert [(t.after, t.to) for t in spec.escalate] == [(timedelta(hours=4), [FRANK, FINANCE_GROUP])]


def test_escalate_after_and_to_go_together(cli: Cli) -> None:  # noqa: F811
    ran = cli("request", "--title", "Rotate keys", "--approver", MAYA, "--escalate-to", FRANK)
    assert ran.code == 3 and "--escalate-after and --escalate-to go together" in ran.err
