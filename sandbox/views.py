"""Modal stacks and App Home tabs: the views an app opens, pushes, updates and publishes.

Both kinds share one table because Slack looks views up, and checks `external_id`, across both.
"""

from __future__ import annotations

import copy
from typing import Any

from slack_approvals.sandbox.blocks import normalize_blocks
from slack_approvals.sandbox.errors import SlackError
from slack_approvals.sandbox.records import ViewRecord
from slack_approvals.sandbox.stores import ContentStore

MODAL_STACK_LIMIT = 3
VIEW_FIELDS = (
    "title",
    "submit",
    "close",
    "blocks",
    "private_metadata",
    "callback_id",
    "external_id",
    "clear_on_close",
    "notify_on_close",
    "submit_disabled",
)


class Views(ContentStore):
    """View records by id, each person's modal stack (bottom first) and each person's Home view."""

    def _empty(self) -> None:
        self._views: dict[str, ViewRecord] = {}
        self._modal_stacks: dict[str, list[str]] = {}
        self._home_views: dict[str, str] = {}

    def _spec(self, view: dict[str, Any]) -> dict[str, Any]:
        spec = {k: copy.deepcopy(view[k]) for k in VIEW_FIELDS if k in view}
        spec["blocks"] = normalize_blocks(view.get("blocks", []), self._mint)
        for key in ("title", "submit", "close"):
            if isinstance(spec.get(key), dict):
                spec[key].setdefault("emoji", True)
        return spec

    def _check_external_id(self, view: dict[str, Any], replacing: str | None) -> None:
        external_id = view.get("external_id")
        if not external_id:
            return
        for record in self._views.values():
            if record.id != replacing and record.spec.get("external_id") == external_id:
                raise SlackError("duplicate_external_id")

    def _new(
        self,
        user_id: str,
        view: dict[str, Any],
        *,
        root_view_id: str | None = None,
        previous_view_id: str | None = None,
    ) -> ViewRecord:
        self._check_external_id(view, None)
        view_id = self._mint.view_id()
        record = ViewRecord(
            id=view_id,
            user_id=user_id,
            type="home" if view.get("type") == "home" else "modal",
            spec=self._spec(view),
            hash=self._mint.view_hash(self._clock()),
            root_view_id=root_view_id or view_id,
            previous_view_id=previous_view_id,
        )
        self._views[view_id] = record
        return record

    def _respec(self, record: ViewRecord, view: dict[str, Any], hash: str | None) -> None:
        """Replaces an existing view's content, refusing a stale `hash` as Slack does."""
        if hash and hash != record.hash:
            raise SlackError("hash_conflict")
        self._check_external_id(view, record.id)
        record.spec = self._spec(view)
        record.hash = self._mint.view_hash(self._clock())

    def open_modal(self, user_id: str, view: dict[str, Any]) -> dict[str, Any]:
        """Starts a new modal stack for the person, replacing any modal they had open."""
        with self._changes.lock:
            for old in self._modal_stacks.pop(user_id, []):
                self._views.pop(old, None)
            record = self._new(user_id, view)
            self._modal_stacks[user_id] = [record.id]
            self._changes.touch()
            return self._json(record)

    def push_modal(self, user_id: str, view: dict[str, Any]) -> dict[str, Any]:
        with self._changes.lock:
            stack = self._modal_stacks.get(user_id, [])
            if not stack:
                raise SlackError("not_found")
            if len(stack) >= MODAL_STACK_LIMIT:
                raise SlackError("push_limit_reached")
            record = self._new(user_id, view, root_view_id=stack[0], previous_view_id=stack[-1])
            stack.append(record.id)
            self._changes.touch()
            return self._json(record)

    def update(
        self,
        view: dict[str, Any],
        *,
        view_id: str | None = None,
        external_id: str | None = None,
        hash: str | None = None,
    ) -> dict[str, Any]:
        with self._changes.lock:
            record = self._find(view_id=view_id, external_id=external_id)
            if hash and hash != record.hash:
                raise SlackError("hash_conflict")
            if (view.get("type") == "home") != (record.type == "home"):
                raise SlackError(
                    "invalid_arguments", messages=["view type cannot change [json-pointer:/view/type]"]
                )
            self._respec(record, view, None)
            record.errors = {}
            self._changes.touch()
            return self._json(record)

    def publish_home(self, user_id: str, view: dict[str, Any], *, hash: str | None = None) -> dict[str, Any]:
        with self._changes.lock:
            self._directory.user(user_id)
            existing = self._home_views.get(user_id)
            if existing is not None:
                record = self._views[existing]
                self._respec(record, view, hash)
            else:
                record = self._new(user_id, view)
                self._home_views[user_id] = record.id
            self._changes.touch()
            return self._json(record)

    def _find(self, *, view_id: str | None, external_id: str | None = None) -> ViewRecord:
        if view_id:
            record = self._views.get(view_id)
        else:
            record = next(
                (v for v in self._views.values() if external_id and v.spec.get("external_id") == external_id),
                None,
            )
        if record is None:
            raise SlackError("not_found")
        return record

    def _json(self, record: ViewRecord) -> dict[str, Any]:
        bot = self._directory.bot
        return record.to_json(self._directory.team.id, bot.app_id, bot.bot_id)

    def get(self, view_id: str) -> dict[str, Any]:
        """The view as Slack's API returns it."""
        with self._changes.lock:
            return self._json(self._find(view_id=view_id))

    def record(self, view_id: str) -> ViewRecord:
        """A copy of the full record, including validation errors the page shows."""
        with self._changes.lock:
            return copy.deepcopy(self._find(view_id=view_id))

    def modal_stack(self, user_id: str) -> list[str]:
        with self._changes.lock:
            return list(self._modal_stacks.get(user_id, []))

    def top_modal(self, user_id: str) -> ViewRecord | None:
        with self._changes.lock:
            stack = self._modal_stacks.get(user_id)
            return copy.deepcopy(self._views[stack[-1]]) if stack else None

    def home(self, user_id: str) -> ViewRecord | None:
        with self._changes.lock:
            view_id = self._home_views.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def set_state(self, view_id: str, values: dict[str, dict[str, Any]]) -> None:
        with self._changes.lock:
            self._find(view_id=view_id).state_values = copy.deepcopy(values)
            self._changes.touch()

    def set_errors(self, view_id: str, errors: dict[str, str]) -> None:
        with self._changes.lock:
            self._find(view_id=view_id).errors = dict(errors)
            self._changes.touch()

    def close_modal(self, user_id: str, view_id: str, *, everything: bool = False) -> list[str]:
        """Closes `view_id` (and all views above it, or the whole stack); returns closed ids."""
        with self._changes.lock:
            stack = self._modal_stacks.get(user_id, [])
            if view_id not in stack:
                raise SlackError("not_found")
            cut = 0 if everything else stack.index(view_id)
            closed = stack[cut:]
            del stack[cut:]
            if not stack:
                self._modal_stacks.pop(user_id, None)
            for closed_id in closed:
                self._views.pop(closed_id, None)
            self._changes.touch()
            return closed
