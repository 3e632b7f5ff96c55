"""The launchers the bot uses, the decision-event hook and the `approvals run` command."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolUpdate
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.deployments.runner import RunnerDeployment
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.states import Cancelled, Cancelling, Running
from typer.testing import CliRunner

from slack_approvals.approvals.cli import app
from slack_approvals.approvals.deploying import ensure_process_pool
from slack_approvals.approvals.launching import (
    RUN_STATE_TIMEOUT_SECONDS,
    DeploymentLauncher,
    InProcessLauncher,
    default_launcher,
    emit_decision_event,
    prepare,
)
from slack_approvals.approvals.settings import load_settings
from slack_approvals.bot.launcher import LaunchError
from slack_approvals.bot.listeners.commands import start_flow
from slack_approvals.bot.slash import parse_command
from slack_approvals.flows.errors import BadParameters
from slack_approvals.flows.examples import simple_approval
from slack_approvals.flows.registry import parse_params
from slack_approvals.flows.services import flow_config, services_installed
from slack_approvals.sandbox.config import DEFAULT_BOT_TOKEN
from slack_approvals.state import Outcome, RequestSpec
from tests.flows.support import (
    APPROVALS,
    DEPLOYS,
    FRANK,
    MAYA,
    REQUESTER,
    FlowEnv,
    decided_events,
)

UI = "http://prefect.example:4200"


def flow_runs_named(name: str) -> int:
    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name]))))


def test_in_process_launch_answers_at_once_and_runs_in_the_background(env: FlowEnv) -> None:
    launcher = InProcessLauncher(ui_url=UI)
    try:
        launched = launcher.launch("simple-approval", {"title": "Launched from Slack"},
                                   requested_by=REQUESTER, channel=DEPLOYS)
        assert launched.flow_name == "simple-approval"
        assert launched.url == f"{UI}/runs/flow-run/{launched.flow_run_id}"
        with get_client(sync_client=True) as client:  # known to Prefect before it has run
            assert str(client.read_flow_run(uuid.UUID(launched.flow_run_id)).id) == launched.flow_run_id
        env.approvers.on("Launched from Slack", MAYA)
        state = launcher.wait(launched.flow_run_id, timeout=30)
    finally:
        launcher.close()
    assert state.is_completed()
    result = state.result()
    request = env.store.get(result.request_id)
    # Who ran it is the requester (no self-approval); where it asks is the policy's (here the
    # installed default), never the caller's.
    assert (request.spec.requester, request.spec.channel) == (REQUESTER, APPROVALS)
    assert request.spec.flow_run_id == launched.flow_run_id


def test_bad_launches_are_refused_before_anything_starts(env: FlowEnv) -> None:
    launcher = InProcessLauncher()
    before = flow_runs_named("payment-approval")
    with pytest.raises(LaunchError, match="amount: Input should be greater than 0"):
        launcher.launch("payment-approval", {"amount": "-3"}, requested_by=REQUESTER, channel=DEPLOYS)
    with pytest.raises(LaunchError, match="there is no flow 'payments'"):
        launcher.launch("payments", {}, requested_by=REQUESTER, channel=DEPLOYS)
    with pytest.raises(LaunchError, match="currency: must look like 'USD'"):
        launcher.check("payment-approval", {"currency": "euro"})
    launcher.check("payment-approval", {"currency": "EUR"})
    assert flow_runs_named("payment-approval") == before
    assert env.posts() == 0
    assert set(launcher.flows()) >= {"etl-pipeline", "department-review"}


def test_deployment_launcher_creates_a_run_of_the_served_deployment(env: FlowEnv) -> None:
    launcher = DeploymentLauncher(ui_url=UI, deployment=f"test-{uuid.uuid4().hex[:8]}")
    with pytest.raises(LaunchError, match="create it with `approvals deploy --pool NAME`"):
        launcher.launch("simple-approval", {}, requested_by=REQUESTER, channel=DEPLOYS)

    deployment = simple_approval.to_deployment(name=launcher.deployment)
    assert isinstance(deployment, RunnerDeployment)
    deployment_id = deployment.apply()  # what `approvals serve` registers, without a runner
    launched = launcher.launch("simple-approval", {"title": "Ship it"}, requested_by=REQUESTER,
                               channel=DEPLOYS)

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(launched.flow_run_id))
    assert flow_run.deployment_id == deployment_id
    assert flow_run.parameters["params"]["requester"] == REQUESTER
    assert "requested-by:U06REQ" in flow_run.tags
    assert launched.url == f"{UI}/runs/flow-run/{launched.flow_run_id}"
    assert launched.where == (f"started deployment run {flow_run.name} of "
                              f"simple-approval/{launcher.deployment}")
    # Nothing has polled for the deployment: the run is made, and the launch says it waits.
    assert launched.warning == ("no `approvals serve` has polled for it yet; the run starts "
                                "when one does")
    # Each launch carries its own idempotency key, so a retried create makes no second run.
    assert flow_run.idempotency_key

    with get_client(sync_client=True) as client:  # what a serving Runner's poll does
        client.get_scheduled_flow_runs_for_deployments([deployment_id])
    polled = launcher.launch("simple-approval", {"title": "Ship it"}, requested_by=REQUESTER,
                             channel=DEPLOYS)
    assert polled.warning is None
    with get_client(sync_client=True) as client:
        second = client.read_flow_run(uuid.UUID(polled.flow_run_id))
    assert second.idempotency_key and second.idempotency_key != flow_run.idempotency_key


def test_a_run_on_a_paused_pool_says_it_waits_for_the_pool(env: FlowEnv) -> None:
    pool = f"paused-{uuid.uuid4().hex[:8]}"
    ensure_process_pool(pool)
    with get_client(sync_client=True) as client:
        client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
    launcher = DeploymentLauncher(deployment=f"test-{uuid.uuid4().hex[:8]}")
    deployment = simple_approval.to_deployment(name=launcher.deployment)
    assert isinstance(deployment, RunnerDeployment)
    deployment.apply(work_pool_name=pool)

    launched = launcher.launch("simple-approval", {}, requested_by=REQUESTER, channel=DEPLOYS)

    assert launched.warning == (f"work pool {pool} is paused: the run starts when it is resumed "
                                f"(prefect work-pool resume {pool})")
    with get_client(sync_client=True) as client:
        client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
    waiting = launcher.launch("simple-approval", {}, requested_by=REQUESTER, channel=DEPLOYS)
    assert waiting.warning == (f"no worker has polled work pool {pool} yet; the run starts "
                               "when one does")


class OneAnswer(BaseHTTPRequestHandler):
    """Answers every request alike: what the test's server class says."""

    status = 200
    content_type = "text/html"
    body = b"<html><body>Welcome to nginx!</body></html>"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def answering(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Refusing(OneAnswer):
    status = 422
    content_type = "application/json"
    body = b'{"detail": "name: field required"}'


def test_a_wrong_prefect_api_url_is_named_as_such(env: FlowEnv) -> None:
    launcher = DeploymentLauncher(deployment=f"test-{uuid.uuid4().hex[:8]}")
    api = str(PREFECT_API_URL.value())
    base = api.removesuffix("/api")
    # The server's address without /api: its UI answers, not the API.
    with temporary_settings({PREFECT_API_URL: base}), \
            pytest.raises(LaunchError, match=re.escape(
                f"PREFECT_API_URL={base} is the Prefect server's address, not its API: "
                f"PREFECT_API_URL must end in /api ({base}/api)")):
        launcher.launch("simple-approval", {}, requested_by=REQUESTER, channel=DEPLOYS)
    # An HTML page (a proxy's, a web server's): one line, no JSONDecodeError traceback.
    with answering(OneAnswer) as page, temporary_settings({PREFECT_API_URL: page}), \
            pytest.raises(LaunchError, match=re.escape(
                f"PREFECT_API_URL={page} does not answer as a Prefect API ({page}/health fails)")):
        launcher.launch("simple-approval", {}, requested_by=REQUESTER, channel=DEPLOYS)
    # A status the server refuses with is said with its detail, not as "could not reach".
    with answering(Refusing) as refusing, temporary_settings({PREFECT_API_URL: refusing}), \
            pytest.raises(LaunchError, match=re.escape(
                f"the Prefect server at {refusing} refused: 422 Unprocessable Entity: "
                "name: field required")):
        launcher.launch("simple-approval", {}, requested_by=REQUESTER, channel=DEPLOYS)


def test_a_launch_that_fails_unexpectedly_is_answered_and_logged(
        env: FlowEnv, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/api"
    replies: list[dict[str, Any]] = []
    launcher = InProcessLauncher()  # raises the client's own errors, not LaunchError
    try:
        with temporary_settings({PREFECT_API_URL: closed, PREFECT_CLIENT_MAX_RETRIES: 0}):
            start_flow(parse_command("run simple-approval title=Lost"), REQUESTER, DEPLOYS,
                       SimpleNamespace(launcher=launcher),  # type: ignore[arg-type]
                       lambda **reply: replies.append(reply))
    finally:
        launcher.close()
    (reply,) = replies
    assert reply["text"].startswith(":warning: Could not start `simple-approval`: ConnectError")
    assert any(r.getMessage() == f"could not start simple-approval for {REQUESTER}"
               and r.exc_info is not None for r in caplog.records)


def test_default_launcher_follows_the_prefect_api_and_installs_settings(env: FlowEnv,
                                                                      tmp_path: Path) -> None:
    settings = load_settings(slack_bot_token=DEFAULT_BOT_TOKEN, approvals_channel="C05DEPLOYS",
                             approvals_default_approvers="U01MAYA,U02FRANK",
                             approvals_data_dir=tmp_path, prefect_ui_url=UI)
    with services_installed(None):
        # The harness sets PREFECT_API_URL: deployments.
        assert isinstance(default_launcher(settings), DeploymentLauncher)
        assert flow_config().approvers == (MAYA, FRANK) and flow_config().channel == "C05DEPLOYS"
        in_process = default_launcher(settings, "in-process")
        assert isinstance(in_process, InProcessLauncher) and in_process.ui_url == UI


def test_decision_event_hook_emits_final_decisions_only(env: FlowEnv) -> None:
    request = env.store.create(RequestSpec(title="Clicked in Slack", channel=DEPLOYS,
                                           approvers=[MAYA]))
    emit_decision_event(request)  # still pending: nothing to say, and no error
    decided = env.store.decide(request.id, MAYA, Outcome.APPROVE).request
    assert decided is not None

    emit_decision_event(decided)

    events = decided_events(request.id)
    assert [e.resource["approval.decided_by"] for e in events] == [MAYA]
    assert events[0].resource["approval.outcome"] == "approve"


def test_cli_refuses_bad_parameters_with_one_line(env: FlowEnv) -> None:
    before = flow_runs_named("payment-approval")
    variables = {"SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN, "SLACK_API_URL": env.sb.api_url}

    result = CliRunner().invoke(app, ["run", "payment-approval", "-p", "amount=abc"], env=variables)

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error: payment-approval: amount: Input should be a valid decimal (got 'abc')"]
    assert result.stdout == ""
    assert flow_runs_named("payment-approval") == before


@pytest.mark.parametrize("params", [
    {"approvers": "U03ERIN"}, {"requester": "U01MAYA"}, {"timeout_outcome": "approve"},
    {"quorum": "1"}, {"approver_groups": "S01FINANCE"}, {"allow_self_approval": "true"},
    {"channel": "C09MINE"}, {"timeout_seconds": "60"}, {"auto_approve_below": "1000000"},
])
def test_slack_callers_cannot_choose_who_approves(params: dict[str, str]) -> None:
    """An allow-list per flow: every parameter but the business ones is refused, by name."""
    (name,) = params
    with pytest.raises(LaunchError, match=f"`{name}` cannot be set: who approves"):
        prepare("deploy-approval", params, requested_by="U03ERIN", channel="C05DEPLOYS")
    with pytest.raises(LaunchError, match=f"`{name}` cannot be set"):
        InProcessLauncher(None).check("deploy-approval", params)
    for flow in ("payment-approval", "etl-pipeline", "multi-step-approval", "department-review"):
        with pytest.raises(LaunchError, match=f"`{name}` cannot be set"):
            InProcessLauncher(None).check(flow, params)


def test_the_slack_caller_is_always_the_requester() -> None:
    _, model = prepare("deploy-approval", {"version": "2.0.0"}, requested_by="U03ERIN",
                       channel="C05DEPLOYS")
    assert getattr(model, "requester") == "U03ERIN"  # noqa: B009


def test_a_destructive_operation_never_times_out_to_approve() -> None:
    with pytest.raises(BadParameters, match="timeout_outcome"):
        parse_params("destructive-operation", {"timeout_outcome": "approve",
                                               "approvers": "U01MAYA,U02FRANK"})


def test_run_gone_names_the_state_of_a_run_that_will_not_act_on_a_decision(env: FlowEnv) -> None:
    launcher = DeploymentLauncher(deployment=f"test-{uuid.uuid4().hex[:8]}")
    deployment = simple_approval.to_deployment(name=launcher.deployment)
    assert isinstance(deployment, RunnerDeployment)
    deployment.apply()
    run_id = launcher.launch("simple-approval", {}, requested_by=REQUESTER,
                             channel=DEPLOYS).flow_run_id
    assert launcher.run_gone(run_id) is None  # scheduled: it may still reach its gate
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(run_id), Running(), force=True)
        assert launcher.run_gone(run_id) is None
        # From Running, as the UI's Cancel does (a scheduled run goes straight to Cancelled).
        client.set_flow_run_state(uuid.UUID(run_id), Cancelling(), force=True)
        assert launcher.run_gone(run_id) == "Cancelling"
        client.set_flow_run_state(uuid.UUID(run_id), Cancelled(), force=True)
    assert launcher.run_gone(run_id) == "Cancelled"
    assert launcher.run_gone(str(uuid.uuid4())) == "deleted"
    assert launcher.run_gone("not-a-run") is None

    with socket.socket() as closed:  # a port nothing listens on: Prefect is down
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
        started = time.monotonic()
        assert launcher.run_gone(run_id) is None
        assert time.monotonic() - started < RUN_STATE_TIMEOUT_SECONDS + 1
