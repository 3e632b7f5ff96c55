"""Mints Slack-looking identifiers: message ts, view ids, trigger ids, hashes, block ids."""

from __future__ import annotations

import random
import string
import threading

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits


def format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def parse_ts(ts: str) -> int:
    """Returns the ts in microseconds; raises ValueError for anything not shaped like a ts."""
    seconds, _, fraction = ts.partition(".")
    if not seconds.isdigit() or not fraction.isdigit() or len(fraction) != 6:
        raise ValueError(f"not a message ts: {ts!r}")
    return int(seconds) * 1_000_000 + int(fraction)


class IdMint:
    """Thread-safe source of identifiers; a fixed seed makes runs reproducible."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._last_ts = 0

    def _pick(self, alphabet: str, length: int) -> str:
        with self._lock:
            return "".join(self._random.choice(alphabet) for _ in range(length))

    def next_ts(self, now: float) -> str:
        """Message timestamps are unique per workspace and strictly increasing."""
        with self._lock:
            micros = max(int(now * 1_000_000), self._last_ts + 1)
            self._last_ts = micros
        return format_ts(micros)

    def view_id(self) -> str:
        return "V" + self._pick(_UPPER_ALNUM, 10)

    def event_id(self) -> str:
        return "Ev" + self._pick(_UPPER_ALNUM, 10)

    def block_id(self) -> str:
        return self._pick(_ALNUM, 5)

    def action_id(self) -> str:
        return self._pick(_ALNUM, 4)

    def view_hash(self, now: float) -> str:
        return f"{int(now)}.{self._pick(_ALNUM, 8)}"

    def trigger_id(self, now: float) -> str:
        return f"{int(now * 1000)}.{self._pick(string.digits, 10)}.{self._pick('0123456789abcdef', 32)}"

    def url_token(self) -> str:
        return self._pick(_ALNUM, 24)
