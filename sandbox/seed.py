"""Who and what exists in the sandbox workspace: team, bot, users, user groups, channels."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Team:
    id: str = "T0SANDBOX"
    domain: str = "sandbox"
    name: str = "Sandbox"


@dataclass(frozen=True)
class Bot:
    user_id: str = "U0APPROVALSBOT"
    bot_id: str = "B0APPROVALS"
    app_id: str = "A0APPROVALS"
    name: str = "approvals"
    display_name: str = "Approvals"


@dataclass(frozen=True)
class User:
    id: str
    name: str
    real_name: str
    title: str = ""
    email: str = ""
    tz: str = "Europe/London"
    is_admin: bool = False


@dataclass(frozen=True)
class UserGroup:
    id: str
    handle: str
    name: str
    users: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    topic: str = ""
    purpose: str = ""
    is_private: bool = False


@dataclass(frozen=True)
class Seed:
    team: Team = field(default_factory=Team)
    bot: Bot = field(default_factory=Bot)
    users: tuple[User, ...] = ()
    groups: tuple[UserGroup, ...] = ()
    channels: tuple[Channel, ...] = ()


def default_seed() -> Seed:
    return Seed(
        users=(
            User("U01MAYA", "maya", "Maya Manager", "Engineering Manager", "maya@sandbox.test"),
            User("U02FRANK", "frank", "Frank Finance", "Finance Controller", "frank@sandbox.test"),
            User("U03ERIN", "erin", "Erin Engineer", "Staff Engineer", "erin@sandbox.test"),
            User("U04OLIVER", "oliver", "Oliver Ops", "Operations Lead", "oliver@sandbox.test"),
            User("U05SARA", "sara", "Sara Sales", "Sales Director", "sara@sandbox.test"),
            User("U06REQ", "riley", "Riley Requester", "Analyst", "riley@sandbox.test"),
        ),
        groups=(
            UserGroup("S01FINANCE", "finance-approvers", "Finance approvers", ("U02FRANK", "U01MAYA")),
            UserGroup("S02ENGLEADS", "eng-leads", "Engineering leads", ("U03ERIN", "U04OLIVER")),
            UserGroup("S03SALESLEADS", "sales-leads", "Sales leads", ("U05SARA",)),
        ),
        channels=(
            Channel("C01APPROVALS", "approvals", "Requests waiting for a decision"),
            Channel("C02FINANCE", "finance", "Spend, budgets and invoices"),
            Channel("C03ENG", "engineering", "Engineering chatter"),
            Channel("C04SALES", "sales", "Deals and discounts"),
            Channel("C05DEPLOYS", "deploys", "Production deploys"),
        ),
    )


def seed_from_dict(data: dict[str, Any]) -> Seed:
    """Builds a seed from JSON-shaped data; missing sections fall back to the defaults."""
    base = default_seed()
    team = Team(**data["team"]) if "team" in data else base.team
    bot = Bot(**data["bot"]) if "bot" in data else base.bot
    users = tuple(User(**u) for u in data["users"]) if "users" in data else base.users
    groups = (
        tuple(
            UserGroup(
                id=g["id"],
                handle=g["handle"],
                name=g.get("name", g["handle"]),
                users=tuple(g.get("users", [])),
                description=g.get("description", ""),
            )
            for g in data["groups"]
        )
        if "groups" in data
        else base.groups
    )
    channels = tuple(Channel(**c) for c in data["channels"]) if "channels" in data else base.channels
    known = {u.id for u in users}
    for group in groups:
        unknown = [u for u in group.users if u not in known]
        if unknown:
            raise ValueError(f"group {group.handle} lists unknown users {unknown}")
    return Seed(team=team, bot=bot, users=users, groups=groups, channels=channels)


def load_seed(path: str | Path) -> Seed:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the seed file must hold a JSON object")
    return seed_from_dict(data)
