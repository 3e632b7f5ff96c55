"""Safe text for Slack: escaping for mrkdwn and cutting to Slack's limits without breaking it."""

from __future__ import annotations

from datetime import datetime

ELLIPSIS = "…"


def escape(text: str) -> str:
    """Slack's three control characters; anything else in user text is shown as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """Cut to `limit` characters, never inside an `&amp;`-style entity, marking the cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def quote(text: str) -> str:
    """A block quote on every line: a reason cannot end the quote and pass for the bot's text."""
    return "\n".join(f">{line}" for line in text.splitlines() or [""])


def mention(user: str | None) -> str:
    """A Slack user as a mention; an email approver (`mailto:<address>`) by their address."""
    if user and user.startswith("mailto:"):
        return escape(user[len("mailto:"):])
    return f"<@{user}>" if user else "the system"


def group_mention(group: str) -> str:
    return f"<!subteam^{group}>"


def slack_date(when: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """Slack renders this in each reader's own time zone; the fallback is UTC."""
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{fmt}|{fallback}>"
