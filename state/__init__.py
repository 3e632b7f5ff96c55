"""The Redis approval store: models, keys, Lua scripts and the blocking and asyncio stores."""

from .connection import connect, connect_async, parse_redis_url
from .errors import ApprovalError, CorruptRecord, InvalidRequest, RedisSetupError, RequestNotFound
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
    "ApprovalError",
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
    "Vote",
    "connect",
    "connect_async",
    "parse_redis_url",
]
