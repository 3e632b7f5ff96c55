"""Every benchmark runs end to end at its smallest size and writes its JSON and figure.

No timing is asserted: the numbers of a tiny run on a busy machine mean nothing. One process
runs them all (`python -m bench --tiny --in-process`), sharing one temporary Prefect server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS
from slack_approvals.state.private_server import find_server_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    find_server_binary()  # fails here, clearly, when no Redis server can be found
    folder = tmp_path_factory.mktemp("bench-results")
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--in-process", "--results-dir", str(folder)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return folder


@pytest.mark.slow
@pytest.mark.real_redis
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_writes_results(results_dir: Path, name: str) -> None:
    data = json.loads((results_dir / f"{name}.json").read_text())
    assert data["name"] == name
    assert data["mode"] == "tiny"
    assert data["metrics"], "a benchmark reports at least one metric"
    assert all(m["value"] is not None for m in data["metrics"] if m["target"]), data["metrics"]
    assert {"nproc", "memory_gib", "cpu_model"} <= data["machine"].keys()
    figure = results_dir / f"{name}.png"
    assert figure.stat().st_size > 10_000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
