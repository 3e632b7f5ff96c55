"""department-review fan-out: N department child flows at once, each decided 1 s after posting.

Wall time of the parent against the sum of the children's own durations (what running them one
after another would take), on Prefect's temporary SQLite server and on a Prefect server backed
by PostgreSQL. An approver thread approves each request 1 s after its message was posted.

department-review takes at most flows.departments.MAX_DEPARTMENTS departments (its roll-up
message needs a block per department, and Slack allows 50); above that the benchmark gathers the
same `department-sign-off` child flows from its own parent, without the roll-up.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slack_approvals.state.connection import connect
from slack_approvals.state.keys import KeySpace
from slack_approvals.state.store import ApprovalStore

from .clicks import APPROVER
from .common import Mode, Result, finish, machine, median, new_figure, save_figure
from .services import RedisServer, SandboxProcess, postgres_available, postgres_prefect, prefect_harness

NAME = "fan_out"
TITLE = "Fan-out: department-review with N departments, each decided 1 s after posting"
DECISION_DELAY_S = 1.0
TARGET_PG_SECONDS = 3.0
TARGET_DEPARTMENTS = 20
NEEDS_PREFECT = True

SIZES: dict[Mode, dict[str, Any]] = {
    # SQLite runs take tens of seconds each at 20+ departments (see the notes): two, not three.
    "full": {"departments": [5, 20, 50], "repeats": {"sqlite": 2, "postgres": 3},
             "backends": ["sqlite", "postgres"], "warmup": True},
    "quick": {"departments": [5], "repeats": {"sqlite": 2}, "backends": ["sqlite"], "warmup": True},
    "tiny": {"departments": [1], "repeats": {"sqlite": 1}, "backends": ["sqlite"], "warmup": False},
}


class Approver:
    """Approves every request `delay` seconds after its message was posted (per the audit)."""

    def __init__(self, redis_url: str, delay: float) -> None:
        self.client = connect(redis_url)
        self.store = ApprovalStore(self.client)
        self.keys = KeySpace()
        self.delay = delay
        self.seen: set[str] = set()
        self.lateness: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-approver", daemon=True)

    def _posted_at(self, request_id: str) -> float | None:
        for raw in self.client.lrange(self.keys.audit(request_id), 0, -1):
            event = json.loads(raw)
            if event.get("event") == "posted":
                return float(event["at"]) / 1000
        return None

    def _loop(self) -> None:
        due: list[tuple[float, str]] = []
        while not self._stop.is_set():
            for request_id in self.client.zrange(self.keys.pending_index(), 0, -1):
                if request_id in self.seen:
                    continue
                posted = self._posted_at(request_id)
                if posted is not None:
                    self.seen.add(request_id)
                    heapq.heappush(due, (posted + self.delay, request_id))
            while due and due[0][0] <= time.time():
                when, request_id = heapq.heappop(due)
                self.lateness.append(time.time() - when)
                result = self.store.decide(request_id, APPROVER, "approve")
                if not result.status.accepted:
                    self.errors.append(f"{request_id}: {result.status.value}")
            self._stop.wait(0.005)

    def __enter__(self) -> Approver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()


async def review_once(count: int, run_index: int) -> dict[str, Any]:
    from slack_approvals.flows.departments import DepartmentReviewParams, DepartmentSpec, department_review

    names = [f"Dept {i:02d}" for i in range(count)]
    period = f"20{10 + run_index % 80:02d}-Q{1 + count % 4}"
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    params = DepartmentReviewParams(period=period,
                                    departments=[DepartmentSpec(name=name) for name in names])
    review = await department_review(params)
    children = review.departments
    flow_name = "department-review"
    wall = time.perf_counter() - started
    ended_at = datetime.now(UTC)
    durations = [(c.finished_at - c.started_at).total_seconds() for c in children]
    starts = sorted(c.started_at for c in children)
    return {"departments": count, "flow": flow_name, "wall_s": wall, "sum_children_s": sum(durations),
            "max_child_s": max(durations), "approved": sum(1 for c in children if c.gate.approved),
            # Where the time beyond one child's 1 s goes: before the first child starts, while
            # the children start one after another, after the last one finishes.
            "to_first_child_s": (starts[0] - started_at).total_seconds(),
            "start_spread_s": (starts[-1] - starts[0]).total_seconds(),
            "after_last_child_s": (ended_at - max(c.finished_at for c in children)).total_seconds()}


def run_backend(backend: str, params: dict[str, Any], redis_url: str, api_url: str) -> dict[str, Any]:
    from .gate_services import gate_services

    server = prefect_harness() if backend == "sqlite" else postgres_prefect()
    runs: dict[str, list[dict[str, Any]]] = {}
    with server, gate_services(redis_url, api_url), Approver(redis_url, DECISION_DELAY_S) as approver:
        if params["warmup"]:
            asyncio.run(review_once(1, 0))  # first flow run: client, imports, caches
        index = 1
        for count in params["departments"]:
            runs[str(count)] = []
            for _ in range(params["repeats"][backend]):
                runs[str(count)].append(asyncio.run(review_once(count, index)))
                index += 1
        lateness = approver.lateness
        errors = approver.errors
    return {"runs": runs, "approver_lateness_ms": median(lateness) * 1000 if lateness else None,
            "approver_errors": errors}


def run(mode: Mode, results_dir: Path) -> Result:
    params = dict(SIZES[mode])
    result = Result(NAME, TITLE, mode, machine(), dict(params))
    started = time.perf_counter()
    backends = list(params["backends"])
    if "postgres" in backends and not postgres_available():
        backends.remove("postgres")
        result.notes.append("No PostgreSQL answered at 127.0.0.1:5432: the PostgreSQL runs were skipped.")
    data: dict[str, Any] = {}
    with RedisServer() as redis_server, SandboxProcess() as sandbox:
        for backend in backends:
            data[backend] = run_backend(backend, params, redis_server.url, sandbox.api_url)
    result.data["backends"] = data
    rows = []
    for backend, found in data.items():
        for count, items in found["runs"].items():
            row = {"backend": backend, "departments": int(count), "flow": items[0]["flow"],
                   "wall_s": median(r["wall_s"] for r in items),
                   "sum_children_s": median(r["sum_children_s"] for r in items),
                   "runs": len(items),
                   "to_first_child_s": median(r["to_first_child_s"] for r in items),
                   "start_spread_s": median(r["start_spread_s"] for r in items),
                   "after_last_child_s": median(r["after_last_child_s"] for r in items),
                   "all_approved": all(r["approved"] == int(count) for r in items)}
            row["speedup"] = row["sum_children_s"] / row["wall_s"]
            rows.append(row)
            is_target = backend == "postgres" and int(count) == TARGET_DEPARTMENTS
            result.add(f"{backend}, {count} departments: wall", row["wall_s"], "s",
                       f"<= {TARGET_PG_SECONDS:g} s" if is_target else None,
                       row["wall_s"] <= TARGET_PG_SECONDS if is_target else None,
                       detail=row["flow"])
            result.add(f"{backend}, {count} departments: sequential sum", row["sum_children_s"], "s",
                       detail=f"{row['speedup']:.1f}x faster together; first child starts after "
                              f"{row['to_first_child_s']:.1f} s, the others over "
                              f"{row['start_spread_s']:.1f} s; {row['after_last_child_s']:.1f} s "
                              "after the last one")
    result.data["rows"] = rows
    result.notes.append(
        f"Each department's request is approved {DECISION_DELAY_S:g} s after its message is posted; "
        "'sequential sum' adds up the child flows' own durations.")
    return finish(result, results_dir, started, plot)


def plot(result: Result, results_dir: Path) -> None:
    rows = result.data["rows"]
    fig, (walls, speed) = new_figure(ncols=2, width=5.2)
    colors = {"sqlite": "#DD8452", "postgres": "#4C72B0"}
    for backend in dict.fromkeys(row["backend"] for row in rows):
        mine = [row for row in rows if row["backend"] == backend]
        n = [row["departments"] for row in mine]
        walls.plot(n, [row["wall_s"] for row in mine], "o-", color=colors.get(backend),
                   label=f"{backend}: wall")
        walls.plot(n, [row["sum_children_s"] for row in mine], "s:", color=colors.get(backend),
                   label=f"{backend}: sequential sum")
        for row in mine:
            walls.annotate(f"{row['wall_s']:.1f} s", (row["departments"], row["wall_s"]),
                           textcoords="offset points", xytext=(4, -10), fontsize=7)
        speed.plot(n, [row["speedup"] for row in mine], "o-", color=colors.get(backend), label=backend)
    walls.axhline(DECISION_DELAY_S, color="#999999", linestyle=":", linewidth=1, label="1 s decision delay")
    walls.axhline(TARGET_PG_SECONDS, color="#C44E52", linestyle="--", linewidth=1,
                  label=f"target, {TARGET_DEPARTMENTS} on PostgreSQL")
    sizes = sorted({row["departments"] for row in rows})
    walls.set_yscale("log")
    walls.set_xticks(sizes)
    speed.set_xticks(sizes)
    walls.set_xlabel("departments")
    walls.set_ylabel("seconds (log)")
    walls.legend(fontsize=7)
    speed.plot([min(r["departments"] for r in rows), max(r["departments"] for r in rows)],
               [min(r["departments"] for r in rows), max(r["departments"] for r in rows)],
               color="#999999", linestyle=":", linewidth=1, label="ideal (= N)")
    speed.set_xlabel("departments")
    speed.set_ylabel("sequential sum / wall")
    speed.legend(fontsize=7)
    repeats = ", ".join(f"{k} {v}" for k, v in result.params["repeats"].items())
    save_figure(fig, result, results_dir, f"median of repeated runs per point ({repeats})")
