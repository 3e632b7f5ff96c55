"""The wheel, built and installed as a user would: one top-level package, data files inside,
and a project with its own `flows` and `state` packages running a real approval gate beside it.

The wheel is built from a copy of the repository (setuptools writes build/ and *.egg-info into
the tree it builds), then installed with --no-deps into a fresh virtualenv that borrows the
dependencies from the project's .venv through a .pth file. A plain path line in a .pth does not
run the .pth files of that folder, so the editable install of the .venv stays invisible there.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from textwrap import dedent
from typing import Any

import pytest

from slack_approvals.sandbox.config import DEFAULT_BOT_TOKEN
from slack_approvals.sandbox.server import SandboxServer
from tests.conftest import RedisServer

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "slack_approvals"
SCRIPT = "approvals"
CHANNEL = "C01APPROVALS"  # in the sandbox's default seed
APPROVER = "U01MAYA"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

# Left out of the copy the wheel is built from: environments, caches, earlier builds.
NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache",
                                    ".pytest_cache", ".hypothesis", "*.egg-info", "build", "dist", ".data",
                                    "node_modules", ".env")
# Inherited settings that would point the child processes somewhere else.
NOT_INHERITED = ("PREFECT_", "SLACK_", "REDIS_", "APPROVALS_", "SANDBOX_", "PYTHON", "VIRTUAL_ENV",
                 "PYTEST_", "UV_PYTHON", "MYPY")


def run(command: list[str], *, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(command, cwd=cwd, env=None if env is None else dict(env), capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` exited with {result.returncode} after "
                    f"{time.monotonic() - started:.1f} s in {cwd}\n"
                    f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    return result


def uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def build_wheel(out: Path, scratch: Path) -> Path:
    source = scratch / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_COPIED)
    tool = uv()
    if tool:
        run([tool, "build", "--wheel", "--out-dir", str(out), str(source)], cwd=scratch, timeout=240)
    else:
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(source)], cwd=scratch,
            timeout=240)
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {wheels}"
    return wheels[0]


@dataclass(frozen=True)
class FreshVenv:
    root: Path
    python: Path
    site_packages: Path

    @property
    def bin(self) -> Path:
        return self.python.parent

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["NO_COLOR"] = "1"
        env.pop("FORCE_COLOR", None)
        env.update(extra)
        return env


def make_venv(where: Path) -> FreshVenv:
    run([sys.executable, "-m", "venv", "--without-pip", str(where)], cwd=where.parent, timeout=120)
    python = where / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  cwd=where).stdout.strip()
    site_packages = Path(purelib)
    # The dependencies, from the project's .venv (a path line: its own .pth files are not run).
    (site_packages / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return FreshVenv(where, python, site_packages)


def install_wheel(venv: FreshVenv, wheel: Path) -> None:
    tool = uv()
    if tool:
        run([tool, "pip", "install", "--offline", "--python", str(venv.python), "--no-deps", str(wheel)],
            cwd=venv.root, env=venv.env())
    else:
        run([sys.executable, "-m", "pip", "--python", str(venv.python), "install", "--no-deps", "--no-index",
             str(wheel)], cwd=venv.root, env=venv.env())


def write_files(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")


# A user's project: packages named like ours, and a Prefect flow with an approval gate.
USER_PROJECT = {
    "flows/__init__.py": """\
        MARKER = "user flows"
        """,
    "flows/release.py": """\
        from datetime import timedelta

        from prefect import flow

        from slack_approvals.flows import approval_gate
        from slack_approvals.state.models import Outcome
        from state import MARKER as STATE_MARKER


        @flow(name="user-release")
        async def release(version: str) -> dict[str, object]:
            decision = await approval_gate(
                "release", f"Release {version} of the user project", summary=STATE_MARKER,
                timeout=timedelta(seconds=3), timeout_outcome=Outcome.APPROVE)
            return {"approved": decision.approved, "status": str(decision.status),
                    "request_id": decision.request_id}
        """,
    "state/__init__.py": """\
        MARKER = "user state"
        """,
    "main.py": """\
        import asyncio
        import json

        import flows
        import state
        from flows.release import release

        import slack_approvals
        import slack_approvals.flows
        from slack_approvals.approvals.launching import install_services
        from slack_approvals.approvals.settings import load_settings
        from slack_approvals.flows import approval_gate

        install_services(load_settings())
        result = asyncio.run(release("v1.2.3"))
        print("RESULT " + json.dumps({
            "flows": flows.MARKER, "state": state.MARKER, "flows_file": flows.__file__,
            "state_file": state.__file__, "package_file": slack_approvals.__file__,
            "gate_module": approval_gate.__module__, "ours_file": slack_approvals.flows.__file__,
            "result": result,
        }))
        """,
    "check_types.py": """\
        from datetime import timedelta

        from slack_approvals.flows import approval_gate
        from slack_approvals.state.models import Decision, Outcome


        async def gate() -> Decision:
            return await approval_gate("deploy", "Deploy api", timeout=timedelta(minutes=5),
                                       timeout_outcome=Outcome.APPROVE)


        async def wrong() -> None:
            await approval_gate("deploy", title=42)
        """,
}


def package_files() -> list[Path]:
    """The files under slack_approvals/, following the symlinks to the layer folders."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(ROOT / PACKAGE, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [Path(folder) / name for name in files]
    return found


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: FreshVenv
    project: Path
    before_install: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    scratch = tmp_path_factory.mktemp("packaging")
    wheel = build_wheel(scratch / "wheelhouse", scratch)
    venv = make_venv(scratch / "venv")
    project = scratch / "user-project"
    write_files(project, USER_PROJECT)
    before = run([str(venv.python), "-c", "import prefect, redis, slack_sdk, typer\nimport slack_approvals"],
                 cwd=project, env=venv.env(), check=False)
    install_wheel(venv, wheel)
    yield Installed(wheel, venv, project, before)
    shutil.rmtree(scratch, ignore_errors=True)


def test_wheel_holds_one_package_with_its_data_files(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = [PurePosixPath(name) for name in wheel.namelist()]
        dist_info = {name.parts[0] for name in names if name.parts[0].endswith(".dist-info")}
        assert len(dist_info) == 1, dist_info
        meta = PurePosixPath(dist_info.pop())
        top_level = wheel.read(str(meta / "top_level.txt")).decode().split()
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(str(meta / "entry_points.txt")).decode())

    assert top_level == [PACKAGE], f"top_level.txt lists {top_level}"
    tops = sorted({name.parts[0] for name in names} - {meta.name})
    assert tops == [PACKAGE], f"the wheel holds more than {PACKAGE}: {tops}"
    assert entry_points.get("console_scripts", SCRIPT) == "slack_approvals.approvals.cli:main"

    inside = {name.relative_to(PACKAGE).as_posix() for name in names if name.parts[0] == PACKAGE}
    # Every module and data file of the package: the layer folders through their symlinks.
    expected = {path.relative_to(ROOT / PACKAGE).as_posix() for path in package_files()
                if path.suffix in (".py", ".lua") or path.name == "py.typed" or "static" in path.parts
                or "templates" in path.parts}
    assert {"py.typed", "state/lua/create.lua", "sandbox/static/index.html",
            "bot/templates/approval_page.html"} <= expected
    missing = sorted(expected - inside)
    assert not missing, f"the wheel lacks {missing}"
    lua = sorted(p for p in inside if p.startswith("state/lua/"))
    static = sorted(p for p in inside if p.startswith("sandbox/static/"))
    assert lua == sorted(p for p in expected if p.startswith("state/lua/"))
    assert static == sorted(p for p in expected if p.startswith("sandbox/static/"))
    assert not [p for p in inside if "__pycache__" in p or p.startswith(("bench/", "tests/"))]


def test_fresh_venv_sees_the_dependencies_but_not_the_editable_install(installed: Installed) -> None:
    before = installed.before_install
    assert before.returncode != 0 and f"No module named '{PACKAGE}'" in before.stderr, (
        f"before the wheel was installed, `import {PACKAGE}` should fail in the fresh venv "
        f"(while the dependencies import):\n{before.stdout}\n{before.stderr}")
    found = run([str(installed.venv.python), "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
                cwd=installed.project, env=installed.venv.env()).stdout.strip()
    assert Path(found).is_relative_to(installed.venv.site_packages), found


def test_user_project_runs_an_approval_gate(installed: Installed, redis_server: RedisServer,
                                            tmp_path: Path) -> None:
    with redis_server.client() as client:
        client.flushall()
    with SandboxServer() as sandbox:
        env = installed.venv.env(
            REDIS_URL=redis_server.url, SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN, SLACK_API_URL=sandbox.api_url,
            APPROVALS_CHANNEL=CHANNEL, APPROVALS_DEFAULT_APPROVERS=APPROVER,
            APPROVALS_WAIT_SLICE_SECONDS="1", APPROVALS_DATA_DIR=str(tmp_path / "data"),
            PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING", PREFECT_SERVER_EPHEMERAL_ENABLED="true",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
        result = run([str(installed.venv.python), "main.py"], cwd=installed.project, env=env, timeout=240)
        messages = sandbox.messages(CHANNEL)

    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result printed\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    report: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    # The project's own packages, and ours from the installed wheel, side by side.
    assert (report["flows"], report["state"]) == ("user flows", "user state")
    assert Path(report["flows_file"]).is_relative_to(installed.project)
    assert Path(report["state_file"]).is_relative_to(installed.project)
    assert Path(report["package_file"]).is_relative_to(installed.venv.site_packages)
    assert Path(report["ours_file"]).is_relative_to(installed.venv.site_packages)
    assert report["gate_module"].startswith(f"{PACKAGE}.flows")
    # The gate posted to Slack, waited on Redis and applied its timeout outcome.
    assert report["result"]["approved"] is True, report
    assert report["result"]["status"] == "timed_out", report
    posted = [m for m in messages if "Release v1.2.3 of the user project" in json.dumps(m)]
    assert posted, f"no approval message in {CHANNEL}: {messages}"
    assert "user state" in json.dumps(posted[0])
    with redis_server.client() as client:
        keys = [key for key in client.scan_iter(count=1000) if report["result"]["request_id"] in key]
    assert keys, "the request is not in Redis"


def test_console_script_and_module_run(installed: Installed) -> None:
    script = installed.venv.bin / SCRIPT
    assert script.exists(), f"the wheel installed no {SCRIPT} script into {installed.venv.bin}"
    assert str(installed.venv.python.parent) in script.read_text().splitlines()[0]
    shown = run([str(script), "--help"], cwd=installed.project, env=installed.venv.env())
    assert "Usage" in shown.stdout, shown.stdout
    # From the user's project folder: its `flows` and `state` are first on sys.path.
    module = run([str(installed.venv.python), "-m", PACKAGE, "--help"], cwd=installed.project,
                 env=installed.venv.env())
    assert "Usage" in module.stdout, module.stdout


def test_mypy_type_checks_user_code_against_the_wheel(installed: Installed, tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "mypy", "--strict", "--python-executable", str(installed.venv.python),
                  "--cache-dir", str(tmp_path / "mypy-cache"), "--no-error-summary", "--hide-error-context",
                  "check_types.py"],
                 cwd=installed.project, env=installed.venv.env(), timeout=280, check=False)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    # The one deliberate mistake is found, so the annotations come through (py.typed); nothing else.
    assert len(errors) == 1, f"{result.stdout}\n{result.stderr}"
    assert errors[0].startswith("check_types.py:13:") and "[arg-type]" in errors[0], errors
