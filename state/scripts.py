"""Loads the Lua scripts once, each with the shared prelude prepended."""

from __future__ import annotations

from functools import cache
from importlib import resources

SCRIPT_NAMES = ("create", "decide", "close", "attach", "fire", "claim")


@cache
def script_source(name: str) -> str:
    if name not in SCRIPT_NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    folder = resources.files("slack_approvals.state") / "lua"
    prelude = (folder / "_common.lua").read_text(encoding="utf-8")
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return prelude + "\n" + body
