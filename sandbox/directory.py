"""Read-only lookups of the seeded team, users, user groups and channels, in Slack's shapes."""

from __future__ import annotations

from typing import Any

from slack_approvals.sandbox.errors import SlackError, lookup
from slack_approvals.sandbox.seed import Channel, Seed, User, UserGroup

_CREATED = 1_700_000_000


def _standing(*, is_admin: bool, is_bot: bool) -> dict[str, Any]:
    """A user object's last fields, alike for people and the bot: none owns the workspace or is a guest."""
    return {
        "is_admin": is_admin,
        "is_owner": False,
        "is_primary_owner": False,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "is_bot": is_bot,
        "is_app_user": False,
        "updated": _CREATED,
    }


def im_channel_id(user_id: str) -> str:
    """Each person's direct-message conversation with the bot."""
    return "D" + user_id[1:]


class Directory:
    """Immutable after construction, so it is safe to share between threads without a lock."""

    def __init__(self, seed: Seed) -> None:
        self.seed = seed
        self.team = seed.team
        self.bot = seed.bot
        self._users = {u.id: u for u in seed.users}
        self._groups = {g.id: g for g in seed.groups}
        self._channels = {c.id: c for c in seed.channels}
        self._channels_by_name = {c.name: c for c in seed.channels}
        self._ims = {
            im_channel_id(u.id): Channel(im_channel_id(u.id), "directmessage", is_private=True)
            for u in seed.users
        }
        self._im_owner = {im_channel_id(u.id): u.id for u in seed.users}

    # people -----------------------------------------------------------------

    def users(self) -> list[User]:
        return list(self._users.values())

    def user(self, user_id: str) -> User:
        return lookup(self._users, user_id, "user_not_found")

    def has_user(self, user_id: str) -> bool:
        return user_id in self._users

    def groups(self) -> list[UserGroup]:
        return list(self._groups.values())

    def group(self, group_id: str) -> UserGroup:
        return lookup(self._groups, group_id, "no_such_subteam")

    def groups_of(self, user_id: str) -> list[UserGroup]:
        return [g for g in self._groups.values() if user_id in g.users]

    # conversations ------------------------------------------------------------

    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    def channel(self, ref: str) -> Channel:
        """Resolves a channel id, `#name`, bare name, IM id or user id (meaning the bot's DM)."""
        if ref in self._channels:
            return self._channels[ref]
        if ref in self._ims:
            return self._ims[ref]
        if ref.lstrip("#") in self._channels_by_name:
            return self._channels_by_name[ref.lstrip("#")]
        if ref in self._users:
            return self._ims[im_channel_id(ref)]
        raise SlackError("channel_not_found")

    def im_owner(self, channel_id: str) -> str | None:
        return self._im_owner.get(channel_id)

    def visible_channels(self, user_id: str) -> list[Channel]:
        own_im = self._ims.get(im_channel_id(user_id))
        return self.channels() + ([own_im] if own_im else [])

    # Slack shapes ---------------------------------------------------------------

    def user_json(self, user: User) -> dict[str, Any]:
        first, _, last = user.real_name.partition(" ")
        return {
            "id": user.id,
            "team_id": self.team.id,
            "name": user.name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": user.real_name,
            "tz": user.tz,
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": {
                "title": user.title,
                "phone": "",
                "skype": "",
                "real_name": user.real_name,
                "real_name_normalized": user.real_name,
                "display_name": user.name,
                "display_name_normalized": user.name,
                "first_name": first,
                "last_name": last,
                "email": user.email,
                "status_text": "",
                "status_emoji": "",
                "team": self.team.id,
            },
            **_standing(is_admin=user.is_admin, is_bot=False),
            "is_email_confirmed": True,
        }

    def bot_user_json(self) -> dict[str, Any]:
        return {
            "id": self.bot.user_id,
            "team_id": self.team.id,
            "name": self.bot.name,
            "deleted": False,
            "real_name": self.bot.display_name,
            "tz": "America/Los_Angeles",
            "tz_label": "Pacific Standard Time",
            "tz_offset": -28800,
            "profile": {
                "real_name": self.bot.display_name,
                "real_name_normalized": self.bot.display_name,
                "display_name": "",
                "display_name_normalized": "",
                "bot_id": self.bot.bot_id,
                "api_app_id": self.bot.app_id,
                "always_active": False,
                "team": self.team.id,
            },
            **_standing(is_admin=False, is_bot=True),
        }

    def bot_profile(self) -> dict[str, Any]:
        return {
            "id": self.bot.bot_id,
            "deleted": False,
            "name": self.bot.display_name,
            "updated": _CREATED,
            "app_id": self.bot.app_id,
            "icons": {},
            "team_id": self.team.id,
        }

    def group_json(self, group: UserGroup, *, include_users: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": group.id,
            "team_id": self.team.id,
            "is_usergroup": True,
            "is_subteam": True,
            "name": group.name,
            "description": group.description,
            "handle": group.handle,
            "is_external": False,
            "date_create": _CREATED,
            "date_update": _CREATED,
            "date_delete": 0,
            "auto_type": None,
            "auto_provision": False,
            "enterprise_subteam_id": "",
            "created_by": group.users[0] if group.users else self.bot.user_id,
            "updated_by": group.users[0] if group.users else self.bot.user_id,
            "deleted_by": None,
            "prefs": {"channels": [], "groups": []},
            "user_count": len(group.users),
        }
        if include_users:
            body["users"] = list(group.users)
        return body

    def channel_json(self, channel: Channel) -> dict[str, Any]:
        owner = self._im_owner.get(channel.id)
        if owner is not None:
            return {
                "id": channel.id,
                "created": _CREATED,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": self.team.id,
                "updated": _CREATED,
                "user": owner,
                "is_user_deleted": False,
                "priority": 0,
            }
        topic = {"value": channel.topic, "creator": "", "last_set": 0}
        purpose = {"value": channel.purpose, "creator": "", "last_set": 0}
        return {
            "id": channel.id,
            "name": channel.name,
            "is_channel": not channel.is_private,
            "is_group": channel.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": channel.is_private,
            "created": _CREATED,
            "is_archived": False,
            "is_general": channel.name == "general",
            "unlinked": 0,
            "name_normalized": channel.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": self.team.id,
            "updated": _CREATED,
            "creator": self.bot.user_id,
            "is_ext_shared": False,
            "shared_team_ids": [self.team.id],
            "is_member": True,
            "topic": topic,
            "purpose": purpose,
            "previous_names": [],
            "num_members": len(self._users) + 1,
        }
