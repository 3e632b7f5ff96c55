"""Every Redis key the project uses, spelled once.

All keys of one request share the hash tag `{<request_id>}`, so a single Lua script may touch
them all, on a single server or a Redis Cluster. The cross-request indexes (all pending, per
approver, per group, open to anyone) live in other slots; they are hints kept up to date by
separate commands right after each script, readers re-check the request itself and remove
entries whose request closed or vanished. Every index expires with its longest-lived entry.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "approvals"
# The kinds of scheduled action besides deadlines (which keep `pending_index`).
# `mail`: the mails to a request's email approvers, sent by a bot (bot/mailer.py).
SCHEDULE_KINDS = ("remind", "escalate", "mail")
# Resuming a suspended flow run: in the same schedule, but it outlives the request's close
# (a decision is what makes it due), so closing never clears it.
RESUME = "resume"


@dataclass(frozen=True)
class KeySpace:
    prefix: str = DEFAULT_PREFIX

    def spec(self, request_id: str) -> str:
        """String: the request's spec as JSON; written once at create."""
        return f"{self.prefix}:req:{{{request_id}}}:spec"

    def state(self, request_id: str) -> str:
        """Hash: status, counters, deadline, eligibility (`approver:U..`, `group:S..`), votes."""
        return f"{self.prefix}:req:{{{request_id}}}:state"

    def audit(self, request_id: str) -> str:
        """List of JSON events. A list, not a stream: a stream pre-allocates ~4.7 KB."""
        return f"{self.prefix}:req:{{{request_id}}}:audit"

    def done(self, request_id: str) -> str:
        """List holding one token once the request is closed; waiters block on it with BLPOP."""
        return f"{self.prefix}:req:{{{request_id}}}:done"

    def link(self, request_id: str, token_hash: str) -> str:
        """Hash: one approval link (`voter`, `vote`, `used_ms` once used), under the SHA-256 of
        its token: Redis never holds a token that would vote. Expires with its request."""
        return f"{self.prefix}:req:{{{request_id}}}:link:{token_hash}"

    def link_misses(self, client: str) -> str:
        """String counter: wrong link tokens from one client address in the current minute."""
        return f"{self.prefix}:link-misses:{client}"

    def request_keys(self, request_id: str) -> list[str]:
        """The KEYS of every request script, in the order the Lua header names them."""
        return [
            self.spec(request_id),
            self.state(request_id),
            self.audit(request_id),
            self.done(request_id),
        ]

    def pending_index(self) -> str:
        """Sorted set request_id -> deadline (ms): what `pending` and the sweeper scan."""
        return f"{self.prefix}:pending"

    def policy(self, policy_hash: str) -> str:
        """String: an approval policy's text under its content hash. Every request it routes
        extends its life to that request's deadline plus the retention, so the text outlives
        the audit trails that name it (`approvals policy show HASH`)."""
        return f"{self.prefix}:policy:{policy_hash}"

    def pending_by_approver(self, user_id: str) -> str:
        """Sorted set request_id -> deadline (ms): pending requests naming this user and not
        yet voted on by them, so a user's list is exact however many others wait."""
        return f"{self.prefix}:pending:user:{user_id}"

    def pending_by_group(self, group_id: str) -> str:
        """Sorted set request_id -> deadline (ms): pending requests naming this user group."""
        return f"{self.prefix}:pending:group:{group_id}"

    def pending_open(self) -> str:
        """Sorted set request_id -> deadline (ms): pending requests open to anyone."""
        return f"{self.prefix}:pending:open"

    def pending_groups(self) -> str:
        """Sorted set group_id -> latest deadline (ms) of a request naming it: the groups whose
        membership a user's list must look up. Entries past their deadline are dropped."""
        return f"{self.prefix}:pending:groups"

    def user_history(self, user_id: str) -> str:
        """List of request ids a user voted on, newest first, capped; for App Home."""
        return f"{self.prefix}:history:{user_id}"

    def schedule(self, kind: str) -> str:
        """Sorted set request_id -> when (ms) its next action of `kind` (see SCHEDULE_KINDS) is
        due: the one schedule every bot's sweeper claims from. A claim moves the entry a lease
        ahead, so another bot skips it and a crashed claimer's action comes due again; the
        request's state hash (`remind_due`, `esc_due`) says whether it is really due, so an
        action fires once however many claim it. Expires with its longest-lived request."""
        if kind not in SCHEDULE_KINDS and kind != RESUME:
            raise ValueError(f"no scheduled action of kind {kind!r}")
        return f"{self.prefix}:schedule:{kind}"

    def stale_messages(self) -> str:
        """Set of request ids whose last message edit failed (Slack down, rate-limited); the
        bot's sweeper takes them and edits again. Expires with the retention, like a request."""
        return f"{self.prefix}:stale-messages"
