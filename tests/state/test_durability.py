"""An acknowledged decision survives `kill -9` of the server (AOF, fsync every second)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from slack_approvals.state import ApprovalStore, DecideStatus, Status
from tests.conftest import RedisServer, start_redis_server

from .support import FRANK, MAYA, spec

REQUESTS = 200

pytestmark = [pytest.mark.slow, pytest.mark.real_redis]


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test alone, so killing it leaves the session's server untouched."""
    server = start_redis_server(tmp_path / "redis")
    yield server
    if server.process.poll() is None:
        server.stop()


def until_aof_written(client: redis.Redis) -> None:
    """Waits until the server has written its AOF buffer to the file, which it usually does before
    it replies, but may put off for up to two seconds while an fsync is still running.

    Once written, the writes are in the file, at least in the kernel's page cache, and ending the
    process cannot lose them; the fsync every second guards against power loss, which a test
    cannot stage.
    """
    give_up = time.monotonic() + 10
    while int(client.info("persistence")["aof_buffer_length"]) > 0:
        assert time.monotonic() < give_up, "the server kept its AOF buffer for 10 s"
        time.sleep(0.01)


def test_acknowledged_decisions_survive_kill_9(own_server: RedisServer) -> None:
    client = own_server.client()
    store = ApprovalStore(client)
    acknowledged: dict[str, Status] = {}
    for i in range(REQUESTS):
        request = store.create(spec(quorum=1), f"durability-{i}")
        vote = "approve" if i % 3 else "reject"
        result = store.decide(request.id, MAYA if i % 2 else FRANK, vote, reason=f"click {i}")
        assert result.status in (DecideStatus.APPROVED, DecideStatus.REJECTED)
        acknowledged[request.id] = Status.APPROVED if vote == "approve" else Status.REJECTED
    open_request = store.create(spec(), "durability-open")
    store.decide(open_request.id, MAYA, "approve")
    until_aof_written(client)
    client.close()

    pid = own_server.process.pid
    own_server.kill9()
    assert own_server.process.returncode == -9
    aof = sum(f.stat().st_size for f in own_server.folder.rglob("*.aof*") if f.is_file())
    print(f"\nkilled redis-server pid {pid} with SIGKILL; AOF on disk: {aof} bytes")

    own_server.start()
    assert own_server.process.pid != pid
    client = own_server.client()
    store = ApprovalStore(client)
    found: Counter[str] = Counter()
    for request_id, status in acknowledged.items():
        try:
            request = store.get(request_id)
        except LookupError:
            found["missing"] += 1
            continue
        found["same" if request.status is status else "different"] += 1
        assert [e.event for e in store.audit(request_id)] == ["created", "vote", status.value]
    survivor = store.get(open_request.id)
    client.close()
    print(f"restarted as pid {own_server.process.pid} ({os.path.basename(own_server.binary)}): "
          f"{found['same']} of {len(acknowledged)} acknowledged decisions found, "
          f"{found['missing']} missing, {found['different']} different; the open request holds "
          f"{len(survivor.votes)} vote")
    assert found == Counter(same=REQUESTS)
    assert survivor.status is Status.PENDING and [v.user for v in survivor.votes] == [MAYA]
