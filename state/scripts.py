"""Loads the Lua scripts once, each with the shared prelude prepended."""

from __future__ import annotations

from functools import cache
from importlib import resources

SCRIPT_NAMES = ("create", "decide", "close", "attach", "fire", "claim", "suspend", "redeem", "mail")


@cache
def script_source(name: str) -> str:
    if name not in SCRIPT_NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    folder = resources.files("slack_approvals.state") / "lua"
    prelude = (folder / "_common.lua").read_text(encoding="utf-8")
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    if name == "redeem":
        # A link's vote is decide's vote: its rules run unchanged, after the link's checks.
        decide = (folder / "decide.lua").read_text(encoding="utf-8")
        body += "\nlocal function decide()\n" + decide + "\nend\n" + _USE_UP_LINK
    return prelude + "\n" + body


# After decide's answer: a vote that counted uses the link up.
_USE_UP_LINK = """
local answer = decide()
if answer[1] == 'recorded' or answer[1] == 'approved' or answer[1] == 'rejected' then
  redis.call('HSET', KEYS[5], 'used_ms', now_ms(), 'used_by', ARGV[1])
end
return answer
"""
