"""Redis bytes per pending request and per closed request (with its audit trail).

A fresh redis-server per repetition; `INFO memory` used_memory before and after creating N
requests (posted, as a gate leaves them), then after approving them all; the delta over N.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from slack_approvals.state.keys import KeySpace
from slack_approvals.state.models import Fact, RequestSpec
from slack_approvals.state.plans import DEFAULT_RETENTION, Plans

from .clicks import APPROVER, CHANNEL, REQUESTER
from .common import Mode, Result, finish, machine, median, new_figure, save_figure
from .pipelined import PipelinedRunner
from .services import RedisServer

NAME = "memory"
TITLE = "Redis memory per approval request"
TARGET_PENDING_BYTES = 2048

SIZES: dict[Mode, dict[str, Any]] = {
    "full": {"counts": [10_000, 100_000], "repeats": {"10000": 3, "100000": 3}},
    "quick": {"counts": [1_000], "repeats": {"1000": 3}},
    "tiny": {"counts": [200], "repeats": {"200": 1}},
}


def typical_spec() -> RequestSpec:
    """A request as a deploy gate writes it: title, a paragraph, three facts, two approvers."""
    return RequestSpec(
        title="Deploy api v2.3.1 to production",
        summary=("Release notes: faster checkout, fixes the retry storm on payment timeouts, "
                 "and adds the audit export. Rollback plan: redeploy v2.3.0 (tagged, images "
                 "cached). Change window approved by the on-call lead."),
        facts=[Fact(label="Service", value="api"), Fact(label="Version", value="v2.3.1"),
               Fact(label="Changes", value="14 commits, 3 migrations")],
        requester=REQUESTER,
        approvers=[APPROVER, "U02FRANK"],
        quorum=1,
        channel=CHANNEL,
        timeout=timedelta(hours=24),
        flow_run_id=str(uuid.uuid4()),
        gate="deploy",
    )


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def key_sizes(client: Any, keys: KeySpace, request_ids: list[str]) -> dict[str, float]:
    """MEMORY USAGE of each of a request's keys, median over a sample of requests."""
    sizes: dict[str, list[int]] = {"spec": [], "state": [], "audit": [], "done": []}
    for request_id in request_ids:
        for kind, key in zip(sizes, keys.request_keys(request_id), strict=True):
            size = client.memory_usage(key, samples=0)
            sizes[kind].append(int(size or 0))
    return {kind: median(values) for kind, values in sizes.items()}


def measure_once(count: int) -> dict[str, Any]:
    keys = KeySpace()
    plans = Plans(keys, DEFAULT_RETENTION)
    spec = typical_spec()
    with RedisServer() as server:
        client = server.client()
        runner = PipelinedRunner(client)
        client.ping()
        base = used_memory(client)
        started = time.perf_counter()
        created = runner.run([plans.create(spec, None) for _ in range(count)])
        ids = [request.id for request in created]
        # A gate posts its message right after creating the request: the ts is part of it.
        runner.run([plans.attach_message(request_id, CHANNEL, f"1700000000.{i:06d}")
                    for i, request_id in enumerate(ids)])
        create_seconds = time.perf_counter() - started
        pending = used_memory(client)
        sample = ids[:: max(1, count // 50)][:50]
        pending_keys = key_sizes(client, keys, sample)
        index_bytes = int(client.memory_usage(keys.pending_index(), samples=0) or 0)
        started = time.perf_counter()
        decided = runner.run([plans.decide(request_id, APPROVER, "approve", None, ())
                              for request_id in ids])
        decide_seconds = time.perf_counter() - started
        approved = sum(1 for result in decided if result.status.value == "approved")
        closed = used_memory(client)
        closed_keys = key_sizes(client, keys, sample)
        audit_lengths = [int(client.llen(keys.audit(request_id))) for request_id in sample]
        info = client.info("memory")
        client.close()
    return {
        "count": count,
        "baseline_bytes": base,
        "pending_bytes_per_request": (pending - base) / count,
        "closed_bytes_per_request": (closed - base) / count,
        "pending_key_bytes": pending_keys,
        "closed_key_bytes": closed_keys,
        "pending_index_bytes_per_request": index_bytes / count,
        "audit_entries_when_closed": median(audit_lengths),
        "approved": approved,
        "spec_json_bytes": len(spec.model_dump_json()),
        "create_seconds": create_seconds,
        "decide_seconds": decide_seconds,
        "allocator": info.get("mem_allocator"),
        "aof_buffer_bytes_at_end": info.get("mem_aof_buffer"),
    }


def run(mode: Mode, results_dir: Path) -> Result:
    params = SIZES[mode]
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    started = time.perf_counter()
    runs: dict[int, list[dict[str, Any]]] = {}
    for count in params["counts"]:
        runs[count] = [measure_once(count) for _ in range(params["repeats"][str(count)])]
    result.data["runs"] = {str(count): items for count, items in runs.items()}
    rows = []
    for count, items in runs.items():
        row = {
            "count": count,
            "pending": median(r["pending_bytes_per_request"] for r in items),
            "closed": median(r["closed_bytes_per_request"] for r in items),
            "create_per_s": median(count / r["create_seconds"] for r in items),
            "decide_per_s": median(count / r["decide_seconds"] for r in items),
            "runs": len(items),
            "pending_spread": (max(r["pending_bytes_per_request"] for r in items)
                               - min(r["pending_bytes_per_request"] for r in items)),
        }
        rows.append(row)
        assert all(r["approved"] == count for r in items), "every request should be approved"
        met = row["pending"] <= TARGET_PENDING_BYTES
        result.add(f"bytes per pending request @{count:,}", row["pending"], "B",
                   f"<= {TARGET_PENDING_BYTES} B", met,
                   detail=f"{len(items)} runs, spread {row['pending_spread']:.0f} B")
        result.add(f"bytes per closed request (with audit) @{count:,}", row["closed"], "B")
    result.data["rows"] = rows
    sample = runs[max(runs)][0]
    result.data["key_bytes"] = {"pending": sample["pending_key_bytes"], "closed": sample["closed_key_bytes"]}
    result.notes.append(
        f"A request: spec JSON of {sample['spec_json_bytes']} bytes (3 facts, 2 approvers), "
        "posted (message ts attached); closed = approved by one vote, audit of "
        f"{sample['audit_entries_when_closed']:.0f} entries, 30-day retention TTLs. "
        f"Allocator {sample['allocator']}; used_memory includes Redis' own per-key overhead "
        "(main dict and expires dict entries).")
    return finish(result, results_dir, started, plot)


def plot(result: Result, results_dir: Path) -> None:
    rows = result.data["rows"]
    fig, (bars, parts) = new_figure(ncols=2, width=5.2)
    labels = [f"{row['count']:,}" for row in rows]
    positions = range(len(rows))
    width = 0.38
    bars.bar([p - width / 2 for p in positions], [row["pending"] for row in rows], width,
             label="pending (posted)", color="#4C72B0")
    bars.bar([p + width / 2 for p in positions], [row["closed"] for row in rows], width,
             label="closed + audit", color="#DD8452")
    for p, row in zip(positions, rows, strict=True):
        bars.text(p - width / 2, row["pending"], f"{row['pending']:.0f}", ha="center", va="bottom",
                  fontsize=8)
        bars.text(p + width / 2, row["closed"], f"{row['closed']:.0f}", ha="center", va="bottom",
                  fontsize=8)
    bars.axhline(TARGET_PENDING_BYTES, color="#C44E52", linestyle="--", linewidth=1,
                 label=f"target {TARGET_PENDING_BYTES} B pending")
    bars.set_xticks(list(positions), labels)
    bars.set_xlabel("requests in Redis")
    bars.set_ylabel("used_memory delta / request (bytes)")
    bars.legend(fontsize=8, loc="lower right")
    keys = result.data["key_bytes"]
    kinds = ["spec", "state", "audit", "done"]
    bottom_pending = 0.0
    bottom_closed = 0.0
    colors = {"spec": "#4C72B0", "state": "#55A868", "audit": "#DD8452", "done": "#8172B3"}
    for kind in kinds:
        parts.bar(0, keys["pending"][kind], 0.5, bottom=bottom_pending, color=colors[kind], label=kind)
        parts.bar(1, keys["closed"][kind], 0.5, bottom=bottom_closed, color=colors[kind])
        bottom_pending += keys["pending"][kind]
        bottom_closed += keys["closed"][kind]
    parts.set_xticks([0, 1], ["pending", "closed"])
    parts.set_ylabel("MEMORY USAGE per key (bytes, median)")
    parts.set_title("where the bytes are (largest run)", fontsize=9)
    parts.legend(fontsize=8)
    repeats = ", ".join(f"{int(k):,}: {v}" for k, v in result.params["repeats"].items())
    save_figure(fig, result, results_dir,
                f"median of runs ({repeats}), each on a fresh redis-server")
