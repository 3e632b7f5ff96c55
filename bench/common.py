"""What every benchmark shares: run sizes, the machine's description, statistics, result files
and figures.

    Mode       "full" (the published numbers), "quick" (a minute or two), "tiny" (smoke test)
    Metric     one line of the summary table, with its target and whether it was met
    Result     a benchmark's JSON file: machine, parameters, metrics, raw series, notes
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import psutil

Mode = Literal["full", "quick", "tiny"]
MODES: tuple[Mode, ...] = ("full", "quick", "tiny")

DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"


# -- the machine ---------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def redis_server_version() -> str:
    from slack_approvals.state.private_server import find_server_binary

    try:
        out = subprocess.run([str(find_server_binary()), "--version"], capture_output=True,
                             text=True, timeout=10, check=False).stdout
    except OSError as e:
        return f"unknown ({e})"
    return out.strip()


def machine() -> dict[str, Any]:
    """Everything a reader needs to judge a number: cores, memory, CPU, versions, load."""
    return {
        "nproc": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "prefect": _version("prefect"),
        "redis_py": _version("redis"),
        "slack_bolt": _version("slack-bolt"),
        "redis_server": redis_server_version(),
        # Other processes may share the machine; the load average says how much they did.
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def machine_label(info: dict[str, Any]) -> str:
    return (f"{info['cpu_model']}, {info['nproc']} cores, {info['memory_gib']} GiB RAM, "
            f"Python {info['python']}, Prefect {info['prefect']}; "
            f"load avg at start {info['loadavg_at_start'][0]}")


# -- statistics ----------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """median, p95, p99, min, max and count of a sample, in the sample's unit."""
    if not values:
        return {"n": 0, "median": float("nan"), "p95": float("nan"), "p99": float("nan"),
                "min": float("nan"), "max": float("nan")}
    return {"n": len(values), "median": statistics.median(values), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "min": min(values), "max": max(values)}


def median(values: Iterable[float]) -> float:
    items = list(values)
    return statistics.median(items) if items else float("nan")


# -- results -------------------------------------------------------------------------------

@dataclass
class Metric:
    """One line of the summary table."""

    name: str
    value: float | None
    unit: str
    target: str | None = None
    met: bool | None = None
    detail: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        value = self.value
        if abs(value) >= 100 or value == int(value):
            text = f"{value:,.0f}"
        elif abs(value) >= 10:
            text = f"{value:.1f}"
        else:
            text = f"{value:.3g}"
        return f"{text} {self.unit}".strip()


@dataclass
class Result:
    name: str
    title: str
    mode: Mode
    machine: dict[str, Any]
    params: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    seconds: float = 0.0

    def add(self, name: str, value: float | None, unit: str, target: str | None = None,
            met: bool | None = None, detail: str = "") -> None:
        self.metrics.append(Metric(name, value, unit, target, met, detail))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        metrics = [Metric(**m) for m in data.get("metrics", [])]
        fields = {k: v for k, v in data.items() if k != "metrics"}
        return cls(metrics=metrics, **fields)


def finish(result: Result, results_dir: Path, started: float,
           plot: Callable[[Result, Path], None]) -> Result:
    """The end of every benchmark: its own run time, its figure, its JSON."""
    result.seconds = time.perf_counter() - started
    plot(result, results_dir)
    write_result(result, results_dir)
    return result


def write_result(result: Result, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    result.machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path = results_dir / f"{result.name}.json"
    text = json.dumps(result.to_json(), indent=2, default=_jsonable)
    path.write_text(_NUMBER_LIST.sub(_one_line, text) + "\n")
    return path


# A list of plain numbers goes on one line: raw samples stay readable and the files small.
_NUMBER = r"(?:-?\d[\d.eE+-]*|null)"
_NUMBER_LIST = re.compile(rf"\[\n\s*({_NUMBER}(?:,\n\s*{_NUMBER})*)\n\s*\]")


def _one_line(match: re.Match[str]) -> str:
    return "[" + ", ".join(item.strip() for item in match.group(1).split(",")) + "]"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def read_result(path: Path) -> Result:
    return Result.from_json(json.loads(path.read_text()))


# -- figures -------------------------------------------------------------------------------

def new_figure(ncols: int = 1, width: float = 7.0, height: float = 4.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols if ncols > 1 else width, height),
                             squeeze=False)
    return fig, axes[0]


def save_figure(fig: Any, result: Result, results_dir: Path, how: str) -> Path:
    """Every figure names the machine and how its points were aggregated."""
    import matplotlib.pyplot as plt

    fig.suptitle(result.title, fontsize=12, fontweight="bold")
    fig.text(0.01, 0.01, f"{machine_label(result.machine)}\n{how}; mode: {result.mode}; "
             f"{result.started_at}", fontsize=7, color="#555555", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{result.name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- small helpers -------------------------------------------------------------------------

def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy; for set-up only, never measured."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def ms(seconds: float) -> float:
    return seconds * 1000.0
