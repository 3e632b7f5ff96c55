"""Runs where production runs: `approvals deploy --pool` on the session's real Prefect server,
`approvals run` starting deployment runs whenever PREFECT_API_URL is set (in-process only
without it), the Slack reply saying which, and a real `prefect worker` running a gated flow to
Completed after a signed click."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import psutil
import pytest
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.objects import State, StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.filesystems import LocalFileSystem
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from bench.clicks import APPROVER, CHANNEL, REQUESTER, signed_click
from bench.services import BOT_TOKEN, BotProcess, SandboxProcess
from slack_approvals.approvals.cli import app
from slack_approvals.approvals.deploying import (
    BOOTSTRAP,
    RESULT_STORAGE_ENV,
    ensure_process_pool,
    served_deployments,
)
from slack_approvals.approvals.launching import DeploymentLauncher, InProcessLauncher
from slack_approvals.approvals.working import run_processes
from slack_approvals.bot.listeners.commands import start_flow
from slack_approvals.bot.slash import parse_command
from slack_approvals.flows.registry import DEPLOYMENT_NAME, REGISTRY
from slack_approvals.flows.services import BOOTSTRAP_ENV, services_installed
from slack_approvals.sandbox.config import DEFAULT_BOT_TOKEN
from slack_approvals.state import ApprovalRequest, ApprovalStore, Outcome, Status
from slack_approvals.state.connection import connect
from tests.conftest import RedisServer
from tests.flows.support import DEPLOYS, FRANK, MAYA, FlowEnv
from tests.flows.support import REQUESTER as FLOW_REQUESTER
from tests.integration.stack import wait_for

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(f"{entry.flow.name}/{DEPLOYMENT_NAME}" for entry in REGISTRY.values())


def deploy(*args: str, tmp_path: Path) -> Any:
    return CliRunner().invoke(app, ["deploy", *args], env={"APPROVALS_DATA_DIR": str(tmp_path)})


def pool_name() -> str:
    return f"pool-{uuid.uuid4().hex[:8]}"


def deployments_on(pool: str) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = {name: client.read_deployment_by_name(name) for name in NAMES}
    return {name: d for name, d in found.items() if d.work_pool_name == pool}


def runs_of(flow: str) -> int:
    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow]))))


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No developer `.env` or policy file in the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_deploy_creates_a_process_pool_and_every_deployment_and_is_idempotent(
        prefect_database: str, in_tmp: Path) -> None:
    pool = pool_name()
    first = deploy("--pool", pool, tmp_path=in_tmp)
    assert first.exit_code == 0, first.output
    assert f"work pool {pool}: created (process)" in first.stdout
    assert sorted(line.split()[1] for line in first.stdout.splitlines()
                  if line.split()[:1] in (["created"], ["moved"], ["updated"])) == NAMES
    assert (f"start workers with: approvals worker --pool {pool} (or prefect worker start "
            f"--pool {pool} --type process)") in first.stdout
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(pool).type == "process"
    deployed = deployments_on(pool)
    assert sorted(deployed) == NAMES
    simple = deployed[f"simple-approval/{DEPLOYMENT_NAME}"]
    # A module path: the worker imports the installed package, no code storage.
    assert simple.entrypoint == "slack_approvals.flows.examples.simple_approval"
    assert not simple.pull_steps
    assert simple.job_variables == {"env": {BOOTSTRAP_ENV: BOOTSTRAP}}
    ids = {name: d.id for name, d in deployed.items()}

    again = deploy("--pool", pool, tmp_path=in_tmp)

    assert again.exit_code == 0, again.output
    assert f"work pool {pool}: exists (process)" in again.stdout
    assert sorted(line.split()[1] for line in again.stdout.splitlines()
                  if line.startswith("updated")) == NAMES
    assert {name: d.id for name, d in deployments_on(pool).items()} == ids

    # One of them as `approvals serve` registers it (no pool): deploying moves it, and warns.
    name = f"simple-approval/{DEPLOYMENT_NAME}"
    with get_client(sync_client=True) as client:
        client.delete_deployment(ids[name])
    (served,) = [d for d in served_deployments() if d.flow_name == "simple-approval"]
    served.apply()
    moved = deploy("--pool", pool, tmp_path=in_tmp)
    assert moved.exit_code == 0, moved.output
    assert f"moved    {name}" in moved.stdout
    assert "stop every `approvals serve`" in moved.stderr
    assert deployments_on(pool)[name].job_variables == {"env": {BOOTSTRAP_ENV: BOOTSTRAP}}


@flow(name=f"retired-{uuid.uuid4().hex[:8]}")
def retired() -> None:
    """A flow a former version registered: only its deployment is made."""


def test_deploy_says_which_pool_a_deployment_left_and_which_are_stale(prefect_database: str,
                                                                      in_tmp: Path) -> None:
    first, second = pool_name(), pool_name()
    assert deploy("--pool", first, tmp_path=in_tmp).exit_code == 0
    deployment = retired.to_deployment(name=DEPLOYMENT_NAME)
    assert isinstance(deployment, RunnerDeployment)
    stale_id = deployment.apply()
    try:
        result = deploy("--pool", second, tmp_path=in_tmp)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(stale_id)

    assert result.exit_code == 0, result.output
    for name in NAMES:
        assert f"moved    {name} (from pool {first})" in result.stdout
    assert "stop every `approvals serve`" not in result.stderr  # no serve was involved
    stale = f"{retired.name}/{DEPLOYMENT_NAME}"
    assert (f"warning: {stale} deploys a flow this version no longer has: its runs cannot "
            f"start; delete it (prefect deployment delete {stale})") in result.stderr
    assert sorted(deployments_on(second)) == NAMES


def test_concurrent_deploys_share_the_pool_one_of_them_created(
        prefect_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other deploy read "no such pool" a moment before the first created it."""
    pool = pool_name()
    assert ensure_process_pool(pool) is True
    real_read = SyncPrefectClient.read_work_pool
    reads: list[str] = []

    def read_before_it_existed(self: SyncPrefectClient, name: str) -> Any:
        reads.append(name)
        if len(reads) == 1:
            raise ObjectNotFound(None)
        return real_read(self, name)

    monkeypatch.setattr(SyncPrefectClient, "read_work_pool", read_before_it_existed)
    assert ensure_process_pool(pool) is False  # ObjectAlreadyExists: read again, go on
    assert reads == [pool, pool]


def test_deploy_names_a_prefect_api_url_without_api(prefect_database: str, in_tmp: Path) -> None:
    base = str(PREFECT_API_URL.value()).removesuffix("/api")
    with temporary_settings({PREFECT_API_URL: base}):
        result = deploy("--pool", pool_name(), tmp_path=in_tmp)
    assert result.exit_code == 3
    assert f"PREFECT_API_URL must end in /api ({base}/api)" in result.stderr


def test_deploy_refuses_a_pool_of_another_type(prefect_database: str, in_tmp: Path) -> None:
    pool = pool_name()
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="kubernetes"))

    result = deploy("--pool", pool, tmp_path=in_tmp)

    assert result.exit_code == 3
    assert f"work pool '{pool}' is a kubernetes pool" in result.stderr
    assert "process pool" in result.stderr
    assert deployments_on(pool) == {}


def test_deploy_names_a_shared_result_storage_only_if_it_exists(prefect_database: str,
                                                                in_tmp: Path) -> None:
    pool, block = pool_name(), f"results-{uuid.uuid4().hex[:8]}"
    missing = deploy("--pool", pool, "--result-storage", f"local-file-system/{block}",
                     tmp_path=in_tmp)
    assert missing.exit_code == 3
    assert f"local-file-system/{block}: there is no such block" in missing.stderr
    malformed = deploy("--pool", pool, "--result-storage", "s3 bucket", tmp_path=in_tmp)
    assert malformed.exit_code == 3 and "expected a Prefect block" in malformed.stderr
    relative = deploy("--pool", pool, "--working-dir", "srv/approvals", tmp_path=in_tmp)
    assert relative.exit_code == 3 and "must be an absolute path" in relative.stderr
    with get_client(sync_client=True) as client:  # nothing was made by the refusals
        assert pool not in {p.name for p in client.read_work_pools(limit=200)}

    LocalFileSystem(basepath=str(in_tmp / "shared-results")).save(block)
    result = deploy("--pool", pool, "--result-storage", f"local-file-system/{block}",
                    "--working-dir", str(in_tmp), tmp_path=in_tmp)

    assert result.exit_code == 0, result.output
    variables = deployments_on(pool)[f"payment-approval/{DEPLOYMENT_NAME}"].job_variables
    assert variables == {"env": {BOOTSTRAP_ENV: BOOTSTRAP,
                                 RESULT_STORAGE_ENV: f"local-file-system/{block}"},
                         "working_dir": str(in_tmp)}
    assert "note: results persist" not in result.stderr


def test_serve_refuses_to_race_the_workers_of_a_pool(prefect_database: str, in_tmp: Path) -> None:
    pool = pool_name()
    deploy("--pool", pool, tmp_path=in_tmp)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "REDIS_URL", "APPROVALS_", "PREFECT_API"))}
    clean.update({"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT),
                  "APPROVALS_DATA_DIR": str(in_tmp / "data")})

    result = subprocess.run([sys.executable, "-m", "slack_approvals", "serve"], cwd=in_tmp,
                            env=clean, capture_output=True, text=True, timeout=120)

    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"of these deployments are on work pool {pool}" in result.stderr
    assert "prefect deployment delete" in result.stderr


def test_run_starts_a_deployment_run_when_prefect_api_url_is_set(prefect_database: str,
                                                                 in_tmp: Path) -> None:
    deploy("--pool", pool_name(), tmp_path=in_tmp)  # the deployments exist; nothing serves them
    env = {"APPROVALS_DATA_DIR": str(in_tmp), "APPROVALS_REQUESTER": REQUESTER}

    with services_installed(None):  # `run` installs the flows' services from its settings
        result = CliRunner().invoke(app, ["run", "payment-approval", "-p", "amount=1500",
                                          "-p", "payee=ACME"], env=env)

    assert result.exit_code == 0, result.output  # no Slack token needed: a worker posts
    first = result.stdout.splitlines()[0]
    assert first.startswith("payment-approval: started deployment run ")
    assert first.endswith(f" of payment-approval/{DEPLOYMENT_NAME} on {PREFECT_API_URL.value()}")
    run_id = result.stdout.split("flow run ", 1)[1].split()[0]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(run_id))
        deployment = client.read_deployment_by_name(f"payment-approval/{DEPLOYMENT_NAME}")
    assert flow_run.deployment_id == deployment.id
    assert flow_run.name in first
    assert flow_run.state is not None and flow_run.state.type is StateType.SCHEDULED
    assert flow_run.parameters["params"]["amount"] == "1500"
    assert flow_run.parameters["params"]["requester"] == REQUESTER
    assert f"requested-by:{REQUESTER}" in flow_run.tags


def test_run_refuses_bad_parameters_and_missing_deployments_before_anything_starts(
        prefect_database: str, in_tmp: Path) -> None:
    env = {"APPROVALS_DATA_DIR": str(in_tmp)}
    deploy("--pool", pool_name(), tmp_path=in_tmp)
    before = runs_of("payment-approval")
    with services_installed(None):
        refused = CliRunner().invoke(app, ["run", "payment-approval", "-p", "approvers=U03ERIN"],
                                     env=env)
        malformed = CliRunner().invoke(app, ["run", "payment-approval", "-p", "amount=lots"],
                                       env=env)
    assert refused.exit_code == 3 and "`approvers` cannot be set" in refused.stderr
    assert malformed.exit_code == 3 and "amount: Input should be a valid decimal" in malformed.stderr
    assert runs_of("payment-approval") == before  # nothing started

    launcher = DeploymentLauncher(deployment=f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(Exception, match=r"create it with `approvals deploy --pool NAME` .* "
                                        r"`approvals serve`") as caught:
        launcher.launch("simple-approval", {}, requested_by=REQUESTER, channel="")
    assert type(caught.value).__name__ == "LaunchError"


@pytest.mark.slow  # a fresh process starts Prefect's temporary server: about 30 s here
def test_run_without_prefect_api_url_runs_in_this_process(env: FlowEnv, redis_server: RedisServer,
                                                          tmp_path: Path) -> None:
    """A fresh process with no PREFECT_API_URL: the flow runs in it, on Prefect's temporary
    server, through settings, wiring and the runtime, and prints its result once decided."""
    with redis_server.client() as client:
        client.flushall()
    store = ApprovalStore(connect(redis_server.url))
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "REDIS_URL", "APPROVALS_", "PREFECT_API"))}
    clean.update({"SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN, "SLACK_API_URL": env.sb.api_url,
                  "REDIS_URL": redis_server.url, "APPROVALS_CHANNEL": DEPLOYS,
                  "APPROVALS_DEFAULT_APPROVERS": FRANK, "APPROVALS_DATA_DIR": str(tmp_path),
                  "APPROVALS_WAIT_SLICE_SECONDS": "0.5",
                  "PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONPATH": str(ROOT)})
    process = subprocess.Popen([sys.executable, "-m", "slack_approvals", "run", "deploy-approval",
                                "--param", "version=3.1.0", "-p", "service=billing",
                                "-p", "notes=Ship it"], cwd=tmp_path, env=clean,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        request = wait_for("the request posted", lambda: next(
            (r for r in store.pending(limit=50) if r.message_ts), None), timeout=90)
        store.decide(request.id, FRANK, Outcome.APPROVE)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert stdout.splitlines()[0] == ("deploy-approval: running in this process, on Prefect's "
                                      "temporary local server (PREFECT_API_URL is unset)")
    assert '"decided_by": "U02FRANK"' in stdout and '"version": "3.1.0"' in stdout
    result = json.loads(stdout[stdout.index("{", stdout.index("completed")):])
    assert result["gate"]["request_id"] == request.id
    # No policy file: the built-in policy leaves channel and approvers to the settings.
    spec = store.get(request.id).spec
    assert (spec.channel, spec.approvers, spec.policy_rule) == (DEPLOYS, [FRANK], None)
    assert spec.flow_run_id is not None


def test_the_slack_reply_says_where_the_run_runs(env: FlowEnv, in_tmp: Path) -> None:
    deploy("--pool", pool_name(), tmp_path=in_tmp)
    replies: list[dict[str, Any]] = []
    command = parse_command("run simple-approval title=Where")

    start_flow(command, FLOW_REQUESTER, DEPLOYS,
               SimpleNamespace(launcher=DeploymentLauncher()),  # type: ignore[arg-type]
               lambda **reply: replies.append(reply))
    in_process = InProcessLauncher()
    try:
        env.approvers.on("Where", MAYA)
        start_flow(command, FLOW_REQUESTER, DEPLOYS,
                   SimpleNamespace(launcher=in_process),  # type: ignore[arg-type]
                   lambda **reply: replies.append(reply))
        run_id = replies[1]["text"].split("flow run `", 1)[1].split("`", 1)[0]
        assert in_process.wait(run_id, timeout=60).is_completed()
    finally:
        in_process.close()

    deployed, here = (reply["text"] for reply in replies)
    assert deployed.startswith(":rocket: Started `simple-approval`: flow run `")
    assert f" of simple-approval/{DEPLOYMENT_NAME}." in deployed
    assert ", started deployment run " in deployed
    assert here.endswith(", running in this process.")


# -- a real Prefect worker ----------------------------------------------------------------

POLICY = f"""\
version: 1
defaults:
  channel: {CHANNEL}
  approvers: [{APPROVER}]
  timeout: 5m
"""


class Worker:
    """`prefect worker start --pool P --type process`, configured through its environment
    the way a systemd unit does it."""

    def __init__(self, folder: Path, pool: str, env: dict[str, str], handing_back: bool = False,
                 name: str = "worker") -> None:
        self.log_path = folder / f"{name}.log"
        command = ([str(Path(sys.executable).parent / "approvals"), "worker", "--pool", pool]
                   if handing_back else
                   [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool,
                    "--type", "process"])
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=folder, start_new_session=True)

        self.folder, self.pool, self.env = folder, pool, env
        self.successors: list[Worker] = []

    def successor(self) -> Worker:
        """Another worker of the same kind on the same pool, as after a restart."""
        started = Worker(self.folder, self.pool, self.env, handing_back=True,
                         name=f"worker-{len(self.successors) + 1}")
        self.successors.append(started)
        return started

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


@contextlib.contextmanager
def worker_stack(redis_server: RedisServer, folder: Path, *deploy_args: str, handing_back: bool = False,
                 **extra_env: str) -> Iterator[tuple[BotProcess, Worker, ApprovalStore]]:
    """A pool with every deployment on it, one worker, one bot in HTTP mode and the sandbox,
    each a process configured through its environment."""
    with redis_server.client() as client:
        client.flushall()
    api_url = str(PREFECT_API_URL.value())
    deployed = deploy("--pool", (pool := pool_name()), *deploy_args, tmp_path=folder)
    assert deployed.exit_code == 0, deployed.output
    folder = Path(tempfile.mkdtemp(prefix="approvals-worker-", dir=folder))
    (folder / "policy.yaml").write_text(POLICY)
    with SandboxProcess() as sandbox, BotProcess(sandbox.api_url, redis_server.url, api_url) as bot:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLACK_", "APPROVALS_", "REDIS_URL", "PREFECT_"))}
        env.update({
            "PREFECT_API_URL": api_url, "PREFECT_HOME": str(folder / "prefect-home"),
            "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_WORKER_QUERY_SECONDS": "1",
            "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": sandbox.api_url,
            "REDIS_URL": redis_server.url, "APPROVALS_POLICY": str(folder / "policy.yaml"),
            "APPROVALS_DATA_DIR": str(folder / "data"), "PYTHONPATH": str(ROOT), **extra_env,
        })
        worker = Worker(folder, pool, env, handing_back)
        try:
            yield bot, worker, ApprovalStore(connect(redis_server.url))
        finally:
            worker.stop()
            for other in worker.successors:
                other.stop()


def start_run(folder: Path, title: str) -> str:
    """`approvals run simple-approval` as an operator types it; the deployment run's id."""
    with services_installed(None):
        result = CliRunner().invoke(app, ["run", "simple-approval", "-p", f"title={title}"],
                                    env={"APPROVALS_DATA_DIR": str(folder),
                                         "APPROVALS_REQUESTER": REQUESTER})
    assert result.exit_code == 0, result.output
    assert "started deployment run" in result.stdout
    return result.stdout.split("flow run ", 1)[1].split()[0]


def posted_request(store: ApprovalStore, worker: Worker, run_id: str) -> ApprovalRequest:
    def posted() -> ApprovalRequest | None:
        if worker.process.poll() is not None:
            raise AssertionError(f"the worker exited: {worker.log()}")
        return next((r for r in store.pending(limit=50)
                     if r.spec.flow_run_id == run_id and r.message_ts), None)

    return wait_for("the worker's run to post its request", posted, timeout=60)


def click(bot: BotProcess, request: ApprovalRequest) -> None:
    body, headers = signed_click(request.id, user=APPROVER, channel=CHANNEL,
                                 message_ts=request.message_ts)
    assert httpx.post(f"{bot.url}/slack/events", content=body, headers=headers,
                      timeout=10).status_code == 200


def run_state(run_id: str) -> State[Any] | None:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(run_id)).state


def final_state(run_id: str) -> State[Any]:
    def final() -> State[Any] | None:
        state = run_state(run_id)
        return state if state is not None and state.is_final() else None

    return wait_for("the run to end", final, timeout=60, every=0.25)


@pytest.mark.slow
def test_a_prefect_worker_runs_a_gated_flow_to_completed_after_a_signed_click(
        prefect_database: str, redis_server: RedisServer, in_tmp: Path) -> None:
    with worker_stack(redis_server, in_tmp) as (bot, worker, store):
        run_id = start_run(in_tmp, "Rotate on a worker")
        request = posted_request(store, worker, run_id)
        assert (request.spec.channel, request.spec.approvers) == (CHANNEL, [APPROVER])
        click(bot, request)
        state = final_state(run_id)
        assert state.type is StateType.COMPLETED, (state, worker.log())
        assert store.get(request.id).decision is not None
        assert "Traceback" not in worker.log()


@pytest.mark.slow
def test_a_worker_run_suspends_past_its_hold_window_and_a_click_resumes_it(
        prefect_database: str, redis_server: RedisServer, in_tmp: Path) -> None:
    """Past APPROVALS_HOLD_SECONDS the run leaves the worker (Suspended); the click at the bot
    resumes it, a worker picks it up again and it completes, its results in the storage block
    `approvals deploy --result-storage` named."""
    block, shared = f"results-{uuid.uuid4().hex[:8]}", in_tmp / "shared-results"
    LocalFileSystem(basepath=str(shared)).save(block)
    with worker_stack(redis_server, in_tmp, "--result-storage", f"local-file-system/{block}",
                      APPROVALS_HOLD_SECONDS="1") as (bot, worker, store):
        run_id = start_run(in_tmp, "Suspend on a worker")
        request = posted_request(store, worker, run_id)

        def suspended() -> bool:
            state = run_state(run_id)
            return state is not None and state.name == "Suspended"

        wait_for("the run to suspend", suspended, timeout=60, every=0.25)
        assert store.get(request.id).suspended_run == run_id
        wait_for("the run's process to exit", lambda: not psutil.Process(
            worker.process.pid).children(recursive=True), timeout=60)
        clicked = time.monotonic()
        click(bot, request)
        state = final_state(run_id)
        print(f"\nworker: click -> Completed after a suspend in {time.monotonic() - clicked:.2f} s")

        assert state.type is StateType.COMPLETED, (state, worker.log())
        assert store.get(request.id).decision is not None
        assert [p for p in shared.rglob("*") if p.is_file()], "no result was persisted there"
        assert "Traceback" not in worker.log()


@pytest.mark.slow
def test_approvals_worker_hands_its_runs_back_on_sigterm(
        prefect_database: str, redis_server: RedisServer, in_tmp: Path) -> None:
    """SIGTERM to `approvals worker` alone (as systemd's KillMode=mixed sends it): the run
    waiting at its gate is stopped and set to AwaitingRetry instead of killed; the next worker
    runs it again, its gate finds the same request, and the click completes it."""
    with worker_stack(redis_server, in_tmp, handing_back=True) as (bot, worker, store):
        run_id = start_run(in_tmp, "Hand back on a worker")
        request = posted_request(store, worker, run_id)

        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=90) == 0, worker.log()
        assert f"handed 1 flow run(s) back to Prefect to be run again: {run_id}" in worker.log()
        state = run_state(run_id)
        assert state is not None and state.name == "AwaitingRetry", (state, worker.log())
        assert store.get(request.id).status is Status.PENDING

        successor = worker.successor()
        wait_for("the next worker to run it again", lambda: (s := run_state(run_id)) is not None
                 and s.type is StateType.RUNNING, timeout=60)
        click(bot, request)
        state = final_state(run_id)
        assert state.type is StateType.COMPLETED, (state, successor.log())
        # The re-run's gate found the request by its idempotency key: one request, posted once.
        assert [e.event for e in store.audit(request.id)].count("posted") == 1
        assert [r.id for r in store.pending(limit=50)] == []


def test_a_worker_s_runs_are_found_by_their_flow_run_id(tmp_path: Path) -> None:
    """The topmost process of each run under the worker (its own children go with it); a
    process without a run id is looked through, not taken."""
    first, second = uuid.uuid4(), uuid.uuid4()
    script = f"""
import os, subprocess, sys, time
run = lambda run_id, *cmd: subprocess.Popen(list(cmd), env=dict(os.environ, PREFECT__FLOW_RUN_ID=run_id))
a = run("{first}", "sh", "-c", "sleep 60 & wait")
helper = subprocess.Popen([sys.executable, "-c",
    "import os, subprocess, time; subprocess.Popen(['sleep', '60'], "
    "env=dict(os.environ, PREFECT__FLOW_RUN_ID='{second}')); time.sleep(60)"])
print(a.pid, helper.pid, flush=True)
time.sleep(60)
"""
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        a_pid, helper_pid = (int(p) for p in worker.stdout.readline().split())

        def both() -> dict[int, uuid.UUID] | None:
            found = run_processes(worker.pid)
            return found if len(found) == 2 else None

        found = wait_for("both runs' processes", both, timeout=30, every=0.05)
        assert found[a_pid] == first  # not its `sleep` child, which inherits the variable
        (second_pid,) = [pid for pid, run_id in found.items() if run_id == second]
        assert psutil.Process(second_pid).ppid() == helper_pid
    finally:
        for child in psutil.Process(worker.pid).children(recursive=True):
            child.kill()
        worker.kill()
        worker.wait()
