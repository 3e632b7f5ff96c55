"""The Redis approval store: models, keys, Lua scripts and the blocking and asyncio stores."""

from .connection import connect, connect_async, parse_redis_url
from .errors import CorruptRecord, InvalidRequest, RedisSetupError, RequestNotFound, StoreError
from .keys import KeySpace
from .models import (
    ApprovalRequest,
    AuditEvent,
    CloseResult,
    CloseStatus,
    DecideResult,
    DecideStatus,
    Decision,
    Fact,
    Outcome,
    RequestSpec,
    Status,
    Vote,
)
from .store import ApprovalStore, AsyncApprovalStore

__all__ = [
    "ApprovalRequest",
    "ApprovalStore",
    "AsyncApprovalStore",
    "AuditEvent",
    "CloseResult",
    "CloseStatus",
    "CorruptRecord",
    "DecideResult",
    "DecideStatus",
    "Decision",
    "Fact",
    "InvalidRequest",
    "KeySpace",
    "Outcome",
    "RedisSetupError",
    "RequestNotFound",
    "RequestSpec",
    "Status",
    "StoreError",
    "Vote",
    "connect",
    "connect_async",
    "parse_redis_url",
]
