"""The README's real-Slack steps answer what a newcomer had to find out by trial."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_real_slack_section_says_where_everything_comes_from() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Use it with a real Slack workspace"):]
    section = section[:section.index("\n## ", 1)]
    for needle in ("App-Level Tokens", "connections:write",  # where the xapp- token is made
                   "only a running bot answers",  # start the bot before Slack verifies the URL
                   "Copy member ID",  # how to find member ids
                   "every channel the flows post in",  # invite the bot everywhere
                   "working directory",  # where .env is read from
                   "anyone who can see the message",  # empty default approvers
                   "needs no signing secret"):
        assert needle in section, needle
    assert "users:read.email" in section  # email approvers who are in the workspace
