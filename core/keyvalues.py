"""`key=value` pairs as typed after `/approvals run <flow>` and `approvals run -p`: one rule for both."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import BadInput

KEY_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def parse_key_values(pairs: Iterable[str]) -> dict[str, str]:
    """Each pair once, keys lowercase words; values are kept as typed (the flow's model converts)."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not KEY_PATTERN.match(key):
            raise BadInput(f"`{pair}` is not a `key=value` pair (keys are lowercase words).")
        if key in params:
            raise BadInput(f"`{key}` is given twice.")
        params[key] = value
    return params
