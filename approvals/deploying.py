"""Every registered flow as a Prefect deployment: served by `approvals serve`, or on a work pool
that Prefect process workers run (`approvals worker --pool NAME`, or `prefect worker start
--pool NAME --type process`).

    served_deployments()          the registry as `<flow>/slack-approvals` deployments
    pooled_deployments()          those of them a work pool holds (`approvals serve` leaves them)
    ensure_process_pool(name)     the pool, created as a process pool when missing
    deploy_to_pool(pool, ...)     every deployment on the pool; says what it did

Entrypoints are module paths (`slack_approvals.flows.examples.simple_approval`), so a worker
needs no code storage, only this package installed. A flow run starts in a fresh process that
has nobody to install the flows' services: each deployment names the installer in its run's
environment (APPROVALS_SERVICES_BOOTSTRAP), which then reads the settings from the worker's
environment (and `.env` in the run's working directory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterId,
)
from prefect.deployments.runner import DeploymentApplyError, RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types.entrypoint import EntrypointType
from prefect.workers.process import ProcessWorker

from slack_approvals.core.errors import ApprovalsError
from slack_approvals.flows.registry import DEPLOYMENT_NAME, REGISTRY
from slack_approvals.flows.services import BOOTSTRAP_ENV

from .launching import launch_error, prefect_api_url

BOOTSTRAP = "slack_approvals.approvals.launching:install_services_from_environment"
POOL_TYPE = "process"
# Prefect's own setting: where every run of the deployments persists its results, so a run
# resumed or run again on another worker finds the results of the tasks before its gate.
RESULT_STORAGE_ENV = "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"
# A Prefect block slug, `<block type>/<block name>`, as Prefect's settings name one.
BLOCK_SLUG = re.compile(r"^[a-z0-9-]+/[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


class DeployError(ApprovalsError):
    """The work pool, the result storage or the Prefect server refused a deployment."""


@dataclass(frozen=True)
class Deployed:
    """One line of what `approvals deploy` did."""

    name: str  # `<flow>/slack-approvals`
    # "moved": it was on another pool, or `approvals serve`'s (no pool), until now
    action: Literal["created", "updated", "moved"]
    moved_from: str | None = None  # the pool it was on; None for `approvals serve`'s

    @property
    def line(self) -> str:
        if self.action != "moved":
            return f"{self.action:8} {self.name}"
        source = f"pool {self.moved_from}" if self.moved_from else "approvals serve"
        return f"{self.action:8} {self.name} (from {source})"


@dataclass(frozen=True)
class DeployReport:
    pool: str
    pool_created: bool
    deployments: list[Deployed]
    job_variables: dict[str, Any]
    # `<flow>/slack-approvals` deployments of flows no longer registered: left as they are
    stale: list[str]


def served_deployments(job_variables: dict[str, Any] | None = None) -> list[RunnerDeployment]:
    """Every registered flow as `<flow>/slack-approvals`, imported by module path in its run."""
    deployments = []
    for entry in REGISTRY.values():
        deployment = entry.flow.to_deployment(name=DEPLOYMENT_NAME, description=entry.description,
                                              tags=["slack-approvals"],
                                              job_variables=dict(job_variables or {}),
                                              entrypoint_type=EntrypointType.MODULE_PATH)
        assert isinstance(deployment, RunnerDeployment)  # no event loop here: built in place
        deployments.append(deployment)
    return deployments


def pooled_deployments() -> dict[str, str]:
    """`<flow>/slack-approvals` -> its work pool, for each registered flow deployed to one.

    `approvals serve` must not serve these too: it would rewrite them without the job
    variables their workers need, and race the workers for every run."""
    pooled = {}
    with get_client(sync_client=True) as client:
        for entry in REGISTRY.values():
            name = f"{entry.flow.name}/{DEPLOYMENT_NAME}"
            try:
                deployment = client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            if deployment.work_pool_name:
                pooled[name] = deployment.work_pool_name
    return pooled


def ensure_process_pool(name: str) -> bool:
    """Create the pool as a process pool unless it exists; True when it was created.

    A pool of another type is refused: its workers (Docker, Kubernetes, ...) would start each
    run from an image, which these deployments do not name."""
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            try:
                client.create_work_pool(WorkPoolCreate(
                    name=name, type=POOL_TYPE,
                    description="slack-approvals flows, run by `prefect worker start --type process`",
                    base_job_template=ProcessWorker.get_default_base_job_template()))
                return True
            except ObjectAlreadyExists:  # a concurrent deploy made it first: use theirs
                pool = client.read_work_pool(name)
    if pool.type != POOL_TYPE:
        raise DeployError(f"work pool {name!r} is a {pool.type} pool; these deployments need a "
                          f"process pool: name another pool (`approvals deploy --pool NAME` "
                          f"creates a missing one as a process pool)")
    return False


def check_result_storage(slug: str) -> None:
    """The block must exist on the server, or every run would fail at its first result."""
    if not BLOCK_SLUG.match(slug):
        raise DeployError(f"--result-storage {slug!r}: expected a Prefect block as "
                          "<block type>/<name>, e.g. local-file-system/approvals-results")
    block_type, _, name = slug.partition("/")
    with get_client(sync_client=True) as client:
        try:
            client.read_block_document_by_name(name, block_type, include_secrets=False)
        except ObjectNotFound as e:
            raise DeployError(f"--result-storage {slug}: there is no such block on the Prefect "
                              "server; create it first (docs/production.md shows how)") from e


def job_variables_for(result_storage: str | None, working_dir: Path | None) -> dict[str, Any]:
    """What each run's process gets from the worker: the services installer, and where the
    results go when a shared storage block is named."""
    env = {BOOTSTRAP_ENV: BOOTSTRAP}
    if result_storage is not None:
        env[RESULT_STORAGE_ENV] = result_storage
    variables: dict[str, Any] = {"env": env}
    if working_dir is not None:
        variables["working_dir"] = str(working_dir)
    return variables


def deploy_to_pool(pool: str, *, result_storage: str | None = None,
                   working_dir: Path | None = None) -> DeployReport:
    """Put every registered flow on `pool`; running it again updates them in place."""
    if not pool.strip() or "/" in pool:
        raise DeployError(f"--pool {pool!r}: a work pool name cannot be empty or contain '/'")
    if working_dir is not None and not working_dir.is_absolute():
        raise DeployError(f"--working-dir {working_dir}: must be an absolute path (it is a "
                          "folder on every worker's machine)")
    try:
        if result_storage is not None:
            check_result_storage(result_storage)
        created = ensure_process_pool(pool)
        variables = job_variables_for(result_storage, working_dir)
        done = []
        with get_client(sync_client=True) as client:
            for deployment in served_deployments(variables):
                name = f"{deployment.flow_name}/{deployment.name}"
                action: Literal["created", "updated", "moved"]
                moved_from = None
                try:
                    existing = client.read_deployment_by_name(name)
                    moved_from = existing.work_pool_name
                    action = "updated" if moved_from == pool else "moved"
                except ObjectNotFound:
                    action = "created"
                deployment.apply(work_pool_name=pool)
                done.append(Deployed(name, action, moved_from if action == "moved" else None))
            stale = stale_deployments(client)
    except DeploymentApplyError as e:
        raise DeployError(f"the Prefect server at {prefect_api_url()} refused: {e}") from e
    except DeployError:
        raise
    except Exception as e:
        raise DeployError(str(launch_error(e, f"the Prefect server at {prefect_api_url()} "
                                              f"answered 404 Not Found: {e}"))) from e
    return DeployReport(pool=pool, pool_created=created, deployments=done, job_variables=variables,
                        stale=stale)


def stale_deployments(client: SyncPrefectClient) -> list[str]:
    """`<flow>/slack-approvals` deployments whose flow is no longer registered: a run of one
    would fail to import it. Reported, not deleted (runs of it may still be waiting)."""
    registered = {entry.flow.name for entry in REGISTRY.values()}
    found = client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DEPLOYMENT_NAME])))
    flows = {flow.id: flow.name for flow in client.read_flows(
        flow_filter=FlowFilter(id=FlowFilterId(any_=[d.flow_id for d in found])))} if found else {}
    return sorted(f"{flows[d.flow_id]}/{d.name}" for d in found
                  if d.flow_id in flows and flows[d.flow_id] not in registered)
