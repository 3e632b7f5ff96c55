"""Append-only JSON-lines records of what approved flows did, under the data folder."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()


def append_once(path: Path, record: dict[str, Any], key: str = "request_id") -> bool:
    """Append `record` unless a line with the same `key` value is there (a re-run flow)."""
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open(encoding="utf-8") as lines:
                if any(json.loads(line).get(key) == record[key] for line in lines if line.strip()):
                    return False
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=str) + "\n")
        return True


def read_all(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
