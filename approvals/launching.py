"""Starts registered flows for the bot and the CLI, and tells Prefect about decisions.

    install_services(settings)      the flows' Redis and Slack clients and defaults, from settings
    InProcessLauncher               flow runs on one background event loop in this process
    DeploymentLauncher              flow runs of the deployments `approvals serve` or
                                    `approvals deploy --pool` made (a worker or serve runs them)
    default_launcher(settings)      deployments when PREFECT_API_URL is set, else in-process
    gone_state(flow_run_id)         whether a run has ended or is being cancelled, asked briefly
    emit_decision_event(request)    the bot's hook after every final decision
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from concurrent import futures
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.flow_engine import run_flow_async, run_flow_sync
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, get_current_settings, temporary_settings

from slack_approvals.bot.launcher import Launched, Launcher, LaunchError
from slack_approvals.core.errors import BadInput
from slack_approvals.flows.errors import FlowsError
from slack_approvals.flows.events import emit_decided
from slack_approvals.flows.hooks import cancel_held
from slack_approvals.flows.params import FlowParams
from slack_approvals.flows.registry import (
    DEPLOYMENT_NAME,
    RegisteredFlow,
    descriptions,
    parse_params,
)
from slack_approvals.flows.services import FlowConfig, Services, ServicesFactory, set_services_factory
from slack_approvals.policy.builtin import builtin_policy
from slack_approvals.policy.opening import FixedPolicy, PolicySource
from slack_approvals.policy.routing import Settled
from slack_approvals.state.closing import Closer
from slack_approvals.state.models import USER_ID_PATTERN, ApprovalRequest

from .explaining import explain, flow_draft
from .policies import fallback_of, policy_source
from .runtime import build_messenger
from .settings import Settings, load_settings
from .wiring import async_store, resolve_redis_url

log = logging.getLogger(__name__)

LaunchMode = Literal["auto", "in-process", "deployments"]
KEEP_RUNS = 1000  # finished in-process runs remembered for wait(); older ones are forgotten
STOP_REASON = "The bot stopped while this flow run was waiting; start it again."
STOP_TIMEOUT_SECONDS = 15.0  # how long a stopping bot waits for its cancelled runs to end
STOP_SCAN_LIMIT = 5000  # pending requests read to find those of this process's runs
# A click's follow-up asks Prefect whether the run still waits; past this it says nothing.
RUN_STATE_TIMEOUT_SECONDS = 3.0
# A launch's calls to Prefect: each gives up after this long, retried this often (safe: every
# launch carries an idempotency key).
LAUNCH_TIMEOUT_SECONDS = 10.0
LAUNCH_RETRIES = 1
# A deployment nothing has polled for this long has no worker (or `approvals serve`) running
# it; they poll every few seconds (Prefect's default: 10 s).
IDLE_POLL_SECONDS = 90


def flow_config_from(settings: Settings) -> FlowConfig:
    return FlowConfig(channel=settings.approvals_channel,
                      approvers=tuple(settings.approvals_default_approvers),
                      requester=settings.approvals_requester,
                      wait_slice_seconds=settings.approvals_wait_slice_seconds,
                      data_dir=settings.approvals_data_dir,
                      redis_outage_seconds=settings.approvals_redis_outage_seconds,
                      hold_seconds=settings.approvals_hold_seconds)


def services_factory(settings: Settings, redis_url: str | None = None) -> ServicesFactory:
    """Connects on first use, so installing it costs nothing and starts no Redis."""
    def build() -> Services:
        url = redis_url or resolve_redis_url(settings)
        messenger = build_messenger(settings, url)
        return Services(messenger.store, messenger, lambda: async_store(settings, url),
                        policy=policy_source(settings))
    return build


def install_services(settings: Settings, redis_url: str | None = None) -> None:
    set_services_factory(services_factory(settings, redis_url), flow_config_from(settings))


def install_services_from_environment() -> None:
    """For flow runs Prefect starts in a new process (APPROVALS_SERVICES_BOOTSTRAP names this)."""
    install_services(load_settings())


def flow_run_url(ui_url: str | None, flow_run_id: str) -> str | None:
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui_url else None


def prepare(flow: str, params: Mapping[str, str], requested_by: str,
            channel: str) -> tuple[RegisteredFlow, FlowParams]:
    """Validate before anything starts: the caller's parameters against the flow's allow-list
    (business parameters only: who approves, how many, where and for how long is the approval
    policy's). Who asked is always the requester, so they cannot approve their own run."""
    try:
        requester = requested_by if re.match(USER_ID_PATTERN, requested_by) else None
        return parse_params(flow, params, requester)
    except FlowsError as e:
        raise LaunchError(str(e)) from e


def _tags(requested_by: str) -> list[str]:
    return ["slack-approvals", f"requested-by:{requested_by}"]


class _RegistryLaunching:
    """What both launchers answer from the registry and the approval policy alone."""

    policy: PolicySource = FixedPolicy(builtin_policy())
    fallback: Mapping[str, Any] = {}

    def flows(self) -> Mapping[str, str]:
        return descriptions()

    def check(self, flow: str, params: Mapping[str, str]) -> None:
        try:
            parse_params(flow, params)
        except FlowsError as e:
            raise LaunchError(str(e)) from e

    def explain(self, flow: str, params: Mapping[str, str], *, requested_by: str) -> Settled:
        try:
            requester = requested_by if re.match(USER_ID_PATTERN, requested_by) else None
            draft = flow_draft(flow, params, requester=requester)
        except (FlowsError, BadInput) as e:
            raise LaunchError(str(e)) from e
        return explain(self.policy.current(), draft, self.fallback)

    def run_gone(self, flow_run_id: str) -> str | None:
        return gone_state(flow_run_id)


class InProcessLauncher(_RegistryLaunching):
    """Runs flows inside this process on one event loop thread, so waiting gates cost a
    coroutine each. The flow run is created first, so its id is known before it starts.

    Runs end with the process; for runs that outlive the bot use deployments.
    """

    def __init__(self, ui_url: str | None = None) -> None:
        self.ui_url = ui_url
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runs: OrderedDict[str, Future[State[Any]]] = OrderedDict()
        self._stopping = False

    def launch(self, flow: str, params: Mapping[str, str], *, requested_by: str,
               channel: str) -> Launched:
        if self._stopping:
            raise LaunchError("The bot is stopping; start the flow again in a minute.")
        entry, model = prepare(flow, params, requested_by, channel)
        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run(entry.flow, parameters=entry.parameters(model),
                                              tags=_tags(requested_by))
        future = asyncio.run_coroutine_threadsafe(self._run(entry, flow_run, model), self._ensure_loop())
        run_id = str(flow_run.id)
        with self._lock:
            self._runs[run_id] = future
            while len(self._runs) > KEEP_RUNS:
                self._runs.popitem(last=False)
        log.info("started %s as flow run %s for %s", entry.name, run_id, requested_by)
        return Launched(flow_run_id=run_id, flow_name=entry.name, url=flow_run_url(self.ui_url, run_id),
                        run_name=flow_run.name)

    async def _run(self, entry: RegisteredFlow, flow_run: FlowRun, model: FlowParams) -> State[Any]:
        parameters = {"params": model}
        if entry.flow.isasync:
            state = await run_flow_async(entry.flow, flow_run=flow_run, parameters=parameters,
                                         return_type="state")
        else:
            state = await asyncio.to_thread(run_flow_sync, entry.flow, flow_run=flow_run,
                                            parameters=parameters, return_type="state")
        assert isinstance(state, State)
        if not state.is_completed():
            log.error("flow run %s (%s) ended %s: %s", flow_run.id, entry.name, state.name,
                      state.message)
        return state

    def run_gone(self, flow_run_id: str) -> str | None:
        with self._lock:
            future = self._runs.get(flow_run_id)
        if future is not None and future.done():
            if future.cancelled() or future.exception() is not None:
                return "Crashed"  # the run's task died with the loop or raised past the engine
            state = future.result()
            return state.name if state.is_final() else None
        if future is None and prefect_api_url() is None:
            # Not one of this process's runs: asking would start a temporary Prefect server
            # here just to say it does not know the run.
            return None
        return gone_state(flow_run_id)

    def wait(self, flow_run_id: str, timeout: float | None = None) -> State[Any]:
        """The final state of a run this launcher started (for the CLI and tests)."""
        with self._lock:
            future = self._runs[flow_run_id]
        return future.result(timeout)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="approvals-flows",
                                                daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        """Stop the loop; runs still waiting are abandoned (Prefect marks them crashed later)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()

    def stop(self, closer: Closer, reason: str = STOP_REASON,
             timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """On shutdown, before Prefect's own exit hooks: start no new run, cancel the pending
        requests of the runs still going (their gates wake and the runs end as cancelled),
        give them `timeout` to finish, cancel what is left, then stop the loop. Left running,
        a run would talk to Prefect after its temporary server stopped and start another."""
        with self._lock:
            self._stopping = True
            running = {run_id: f for run_id, f in self._runs.items() if not f.done()}
        if running:
            try:
                pending = closer.store.pending(limit=STOP_SCAN_LIMIT)
            except Exception:
                log.exception("could not list the requests of the runs in this process")
                pending = []
            for request in pending:
                if request.spec.flow_run_id in running:
                    try:
                        closer.cancel(request.id, None, reason, force=True)
                    except Exception:
                        log.exception("could not cancel request %s", request.id)
            for run_id in running:
                # Gates of child flows (the department review's) hold their requests under
                # the root run too; they carry the child's run id, which the scan misses.
                cancel_held(run_id, reason)
            log.warning("stopping: %d in-process flow run(s) cancelled", len(running))
            futures.wait(running.values(), timeout=timeout)
            for future in running.values():
                future.cancel()  # cancels the run's task on the loop
            futures.wait(running.values(), timeout=STOP_TIMEOUT_SECONDS / 3)
        self.close()


class DeploymentLauncher(_RegistryLaunching):
    """Creates flow runs of the deployments that `approvals serve` serves or that
    `approvals deploy --pool` put on a work pool; whichever process picks a run up runs it,
    so the run outlives the launcher (the bot, the CLI)."""

    def __init__(self, ui_url: str | None = None, deployment: str = DEPLOYMENT_NAME) -> None:
        self.ui_url = ui_url
        self.deployment = deployment

    def launch(self, flow: str, params: Mapping[str, str], *, requested_by: str,
               channel: str) -> Launched:
        entry, model = prepare(flow, params, requested_by, channel)  # before anything starts
        name = f"{entry.flow.name}/{self.deployment}"
        # One key per launch: the client's retry of a create whose answer was lost (a timeout,
        # a 502 from a proxy) returns the run already made instead of making a second one,
        # which would post a second approval request.
        key = uuid.uuid4().hex
        try:
            with launch_client() as client:
                deployment = client.read_deployment_by_name(name)
                flow_run = client.create_flow_run_from_deployment(
                    deployment.id, parameters=entry.parameters(model), tags=_tags(requested_by),
                    idempotency_key=key)
                warning = idle_warning(client, deployment)
        except Exception as e:
            raise launch_error(e, missing_deployment(name)) from e
        run_id = str(flow_run.id)
        log.info("started %s as deployment run %s (%s) for %s", name, flow_run.name, run_id,
                 requested_by)
        if warning:
            log.warning("flow run %s of %s: %s", run_id, name, warning)
        return Launched(flow_run_id=run_id, flow_name=entry.name, url=flow_run_url(self.ui_url, run_id),
                        deployment=name, run_name=flow_run.name, warning=warning)


@contextmanager
def launch_client() -> Iterator[SyncPrefectClient]:
    """A client whose calls give up within LAUNCH_TIMEOUT_SECONDS, retried at most
    LAUNCH_RETRIES times (Prefect's defaults, 60 s and 5 retries with backoff, would keep the
    CLI or the Slack reply waiting minutes on a hung server)."""
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: LAUNCH_RETRIES}), \
            get_client(sync_client=True, httpx_settings={"timeout": LAUNCH_TIMEOUT_SECONDS}) as client:
        yield client


def idle_warning(client: SyncPrefectClient, deployment: DeploymentResponse) -> str | None:
    """What keeps a new run from starting: a paused pool, or no worker (no `approvals serve`)
    polling for the deployment lately. None when something polls, and when Prefect cannot say."""
    try:
        if deployment.work_pool_name:
            pool = client.read_work_pool(deployment.work_pool_name)
            if pool.is_paused:
                return (f"work pool {pool.name} is paused: the run starts when it is resumed "
                        f"(prefect work-pool resume {pool.name})")
        polled = deployment.last_polled
        if polled is not None and datetime.now(UTC) - polled < timedelta(seconds=IDLE_POLL_SECONDS):
            return None
        since = f"since {polled:%Y-%m-%d %H:%M:%S} UTC" if polled is not None else "yet"
        if deployment.work_pool_name:
            return (f"no worker has polled work pool {deployment.work_pool_name} {since}; "
                    "the run starts when one does")
        return f"no `approvals serve` has polled for it {since}; the run starts when one does"
    except Exception as e:  # the run exists: a failed look at the pool must not hide that
        log.info("could not tell whether anything polls for %s: %s", deployment.name, e)
        return None


def launch_error(e: Exception, not_found: str) -> LaunchError:
    """One readable line for everything a Prefect call can raise at a launch or a deploy."""
    url = prefect_api_url()
    if isinstance(e, ObjectNotFound):
        return LaunchError(api_url_problem(url) or not_found)
    if isinstance(e, (httpx.HTTPStatusError, PrefectHTTPStatusError)):
        wrong_url = api_url_problem(url) if e.response.status_code == 404 else None
        return LaunchError(wrong_url or refused(url, e.response))
    if isinstance(e, (httpx.HTTPError, OSError)):
        return LaunchError(f"could not reach the Prefect server at {url}: {type(e).__name__}: {e}")
    if isinstance(e, ValueError):  # JSONDecodeError included: an answer that is not the API's
        return LaunchError(api_url_problem(url) or
                           f"the server at {url} did not answer as a Prefect API "
                           f"({type(e).__name__}: {e}); is PREFECT_API_URL right?")
    return LaunchError(f"could not start the run on the Prefect server at {url}: "
                       f"{type(e).__name__}: {e}")


def refused(url: str | None, response: httpx.Response) -> str:
    """`the Prefect server at X refused: 422 Unprocessable Entity: <its detail>`."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    text = " ".join(str(detail).split())[:300]
    return f"the Prefect server at {url} refused: {response.status_code} {response.reason_phrase}: {text}"


def api_url_problem(url: str | None) -> str | None:
    """When PREFECT_API_URL is not a Prefect API but `{url}/api` is (the `/api` left off),
    say so; a 404 there would otherwise read as "no such deployment"."""
    if not url:
        return None
    base = url.rstrip("/")

    def healthy(http: httpx.Client, health: str) -> bool:
        """Prefect's /health answers the JSON `true`; a web page answers 200 too."""
        response = http.get(health)
        try:
            return response.status_code == 200 and response.json() is True
        except ValueError:
            return False

    try:
        with httpx.Client(timeout=RUN_STATE_TIMEOUT_SECONDS) as http:
            if healthy(http, f"{base}/health"):
                return None
            if not base.endswith("/api") and healthy(http, f"{base}/api/health"):
                return (f"PREFECT_API_URL={url} is the Prefect server's address, not its API: "
                        f"PREFECT_API_URL must end in /api ({base}/api)")
    except httpx.HTTPError:
        return None
    return (f"PREFECT_API_URL={url} does not answer as a Prefect API ({base}/health fails); "
            "it must be the server's API, ending in /api")


def missing_deployment(name: str) -> str:
    """What to do when a flow has no deployment yet on the server PREFECT_API_URL names."""
    return (f"there is no deployment {name} on the Prefect server at {prefect_api_url()}: "
            "create it with `approvals deploy --pool NAME` (run by Prefect workers) or keep "
            "`approvals serve` running")


def gone_state(flow_run_id: str) -> str | None:
    """The flow run's state name if it has ended or is being cancelled, asked of Prefect once
    and briefly (no retries): an unreachable or restarting API means "cannot say", None."""
    try:
        run_id = uuid.UUID(flow_run_id)
    except ValueError:
        return None  # not a Prefect run id (a request made by the CLI or a test)
    try:
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}), \
                get_client(sync_client=True,
                           httpx_settings={"timeout": RUN_STATE_TIMEOUT_SECONDS}) as client:
            state = client.read_flow_run(run_id).state
    except ObjectNotFound:
        return "deleted"
    except Exception as e:
        log.info("could not read the state of flow run %s: %s", flow_run_id, e)
        return None
    if state is not None and (state.is_final() or state.is_cancelling()):
        return state.name
    return None


def prefect_api_url() -> str | None:
    """PREFECT_API_URL (environment or Prefect profile); None means Prefect's temporary server."""
    url = get_current_settings().api.url
    return str(url) if url else None


def deployment_mode() -> bool:
    """Whether `approvals run` and `/approvals run` start deployment runs: whenever a Prefect
    server is named, so runs outlive the process that started them."""
    return prefect_api_url() is not None


def default_launcher(settings: Settings, mode: LaunchMode = "auto") -> Launcher:
    """`auto`: deployments when PREFECT_API_URL names a server, else in this process (on
    Prefect's temporary server)."""
    install_services(settings)
    launcher: _RegistryLaunching
    if mode == "auto":
        mode = "deployments" if deployment_mode() else "in-process"
    if mode == "deployments":
        launcher = DeploymentLauncher(settings.prefect_ui_url)
    else:
        launcher = InProcessLauncher(settings.prefect_ui_url)
    launcher.policy = policy_source(settings)
    launcher.fallback = fallback_of(settings)
    return launcher


def emit_decision_event(request: ApprovalRequest) -> None:
    """The bot calls this after recording a final decision; it must never raise."""
    if request.decision is None:
        return
    if prefect_api_url() is None:
        # Nobody could subscribe to it, and Prefect would start a temporary server in the bot
        # process just to receive it (and take ~10 s to flush it at exit).
        return
    try:
        emit_decided(request)
    except Exception:
        log.exception("could not emit approval.decided for %s", request.id)
