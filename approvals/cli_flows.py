"""`approvals run`, `approvals serve` and `approvals deploy`: the registered flows from the
command line."""

from __future__ import annotations

import asyncio
import logging
import os
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from prefect.client.schemas.objects import State
from prefect.flow_engine import run_flow_async
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from slack_approvals.bot.launcher import LaunchError
from slack_approvals.flows.errors import FlowsError
from slack_approvals.flows.params import FlowParams
from slack_approvals.flows.registry import (
    REGISTRY,
    RegisteredFlow,
    get_flow,
    parse_pairs,
    parse_params,
)
from slack_approvals.flows.services import BOOTSTRAP_ENV

from .cli_support import EXIT_ERROR, fail, settings_or_exit
from .deploying import BOOTSTRAP, DeployError, deploy_to_pool, pooled_deployments, served_deployments
from .handing_back import serve_handing_back
from .launching import (
    DeploymentLauncher,
    deployment_mode,
    install_services,
    launch_error,
    prefect_api_url,
)
from .logformat import configure_logging
from .settings import Settings, SettingsError
from .working import WorkerError, run_worker

CLI_REQUESTER = "cli"  # who a deployment run's tags name when APPROVALS_REQUESTER is unset


async def run_locally(entry: RegisteredFlow, params: FlowParams) -> tuple[State[Any], Any]:
    """Run in this process; Prefect starts its temporary server when PREFECT_API_URL is unset."""
    state = await run_flow_async(entry.flow, parameters={"params": params}, return_type="state")
    assert isinstance(state, State)
    return state, await state.aresult(raise_on_failure=False)


def show(result: object) -> str:
    if isinstance(result, BaseModel):
        return result.model_dump_json(indent=2)
    return repr(result)


def type_name(annotation: Any) -> str:
    """A parameter's type as a person would say it on the command line."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (Union, UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" (optional)" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple, set):
        return "list, comma-separated"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(str(m.value) for m in annotation)
    names = {str: "text", int: "whole number", float: "number", Decimal: "decimal number",
             bool: "true/false"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return "from the settings"
    default = info.default
    if isinstance(default, Enum):
        default = default.value
    return "-" if default in ("", None) else str(default)


def flow_help(flow: str) -> None:
    """`approvals run <flow> --help`: the flow's parameters, their types and defaults, and
    which a caller may set (from Slack or with -p; the rest is the approval policy's)."""
    try:
        entry = get_flow(flow)
    except FlowsError as e:
        raise fail(str(e)) from e
    allowed = set(entry.caller_params)
    rows = [(name, type_name(info.annotation), default_text(info),
             "yes" if name in allowed else "no")
            for name, info in entry.params.model_fields.items()]
    header = ("parameter", "type", "default", "caller may set")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    typer.echo(f"{entry.name}: {entry.description}\n")
    typer.echo(f"Usage: approvals run {entry.name} -p key=value [-p key=value ...]\n")
    for row in [header, *rows]:
        typer.echo("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
                   + "  " + row[3])
    typer.echo("\nA caller (`approvals run -p` or `/approvals run` in Slack) sets only the "
               "parameters marked yes;\nwho approves, how many, where and for how long is the "
               "approval policy's.")


def run_command(flow: str | None, param: list[str]) -> None:
    """With PREFECT_API_URL set, start a run of the flow's deployment (a worker or
    `approvals serve` runs it) and print its id; without it, run the flow here and print its
    result (exit 1 if it fails)."""
    if flow is None:
        for name, entry in sorted(REGISTRY.items()):
            typer.echo(f"{name:24} {entry.description}")
        return
    settings = settings_or_exit()
    install_services(settings)  # first: parameter defaults come from it; connects on use only
    try:
        pairs = parse_pairs(param)
        entry, params = parse_params(flow, pairs)
    except FlowsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_ERROR) from e
    if deployment_mode():
        start_deployment_run(settings, entry, pairs)
        return
    try:  # the flow posts to Slack from this process
        settings.bot_token()
    except SettingsError as e:
        raise fail(str(e)) from e
    typer.echo(f"{entry.name}: running in this process, on Prefect's temporary local server "
               "(PREFECT_API_URL is unset)")
    typer.echo(f"parameters: {params.model_dump_json()}")
    state, result = asyncio.run(run_locally(entry, params))
    if not state.is_completed():
        typer.echo(f"error: {entry.name} ended {state.name}: {state.message}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{entry.name} completed:")
    typer.echo(show(result))


def start_deployment_run(settings: Settings, entry: RegisteredFlow, pairs: dict[str, str]) -> None:
    """What `/approvals run` does: a run of `<flow>/slack-approvals`, validated first."""
    launcher = DeploymentLauncher(settings.prefect_ui_url)
    try:
        launched = launcher.launch(entry.name, pairs,
                                   requested_by=settings.approvals_requester or CLI_REQUESTER,
                                   channel="")
    except LaunchError as e:
        raise fail(str(e)) from e
    typer.echo(f"{entry.name}: {launched.where} on {prefect_api_url()}")
    typer.echo(f"flow run {launched.flow_run_id}" + (f"  {launched.url}" if launched.url else ""))
    if launched.warning:
        typer.echo(f"warning: {launched.warning}", err=True)


def serve_command(limit: int | None) -> None:
    """Serve every registered flow as the deployment `<flow>/slack-approvals`; a SIGTERM hands
    the runs in progress back to Prefect (see handing_back.py)."""
    settings = settings_or_exit()
    install_services(settings)
    # Each flow run starts in a new process, which installs the services the same way.
    os.environ[BOOTSTRAP_ENV] = BOOTSTRAP
    if prefect_api_url() is None:
        typer.echo("warning: PREFECT_API_URL is unset, so the deployments live on a temporary "
                   "server that only this process can reach", err=True)
    else:
        try:
            pooled = pooled_deployments()
        except Exception as e:  # unreachable, refused, or not a Prefect API at all
            raise fail(str(launch_error(e, f"the Prefect server at {prefect_api_url()} "
                                           f"answered 404 Not Found: {e}"))) from e
        if pooled:
            pools = ", ".join(sorted(set(pooled.values())))
            raise fail(f"{len(pooled)} of these deployments are on work pool {pools} "
                       "(`approvals deploy`), run by Prefect workers: serving them too would race "
                       "the workers for every run. Use the workers, or delete those deployments "
                       "(`prefect deployment delete <flow>/slack-approvals`) before serving")
    # SIGTERM (a restart) hands the running flow runs back to Prefect instead of cancelling
    # them; the next `approvals serve` runs them again and their gates wait on.
    handed_back = serve_handing_back(served_deployments(), limit)
    if handed_back:
        typer.echo(f"handed {len(handed_back)} flow run(s) back to Prefect to be run again: "
                   + ", ".join(str(run_id) for run_id in handed_back), err=True)


def deploy_command(pool: str, result_storage: str | None, working_dir: Path | None) -> None:
    """Every registered flow as `<flow>/slack-approvals` on a process work pool; say what."""
    if prefect_api_url() is None:
        raise fail("PREFECT_API_URL is unset: name the Prefect server the workers poll "
                   "(e.g. PREFECT_API_URL=http://prefect.internal:4200/api)")
    try:
        report = deploy_to_pool(pool, result_storage=result_storage, working_dir=working_dir)
    except DeployError as e:
        raise fail(str(e)) from e
    typer.echo(f"work pool {report.pool}: " + ("created (process)" if report.pool_created
                                                else "exists (process)"))
    for deployed in report.deployments:
        typer.echo(deployed.line)
    env = report.job_variables.get("env", {})
    typer.echo(f"on {prefect_api_url()}; each run's environment adds "
               + " ".join(f"{k}={v}" for k, v in sorted(env.items()))
               + (f"; working directory {report.job_variables['working_dir']}"
                  if "working_dir" in report.job_variables else ""))
    for name in report.stale:
        typer.echo(f"warning: {name} deploys a flow this version no longer has: its runs "
                   f"cannot start; delete it (prefect deployment delete {name}) once no run of "
                   "it waits", err=True)
    if any(d.action == "moved" and d.moved_from is None for d in report.deployments):
        typer.echo("warning: some deployments were `approvals serve`'s until now: stop every "
                   "`approvals serve` on this Prefect server, or it races the workers", err=True)
    if result_storage is None:
        typer.echo("note: results persist where each worker's Prefect settings say "
                   "(PREFECT_LOCAL_STORAGE_PATH, default ~/.prefect/storage): with workers on "
                   "several machines pass --result-storage (see docs/production.md)", err=True)
    typer.echo(f"start workers with: approvals worker --pool {report.pool} (or prefect worker "
               f"start --pool {report.pool} --type process)")


def worker_command(pool: str, limit: int | None) -> None:
    """`prefect worker start --pool POOL --type process`, with SIGTERM handing runs back."""
    if prefect_api_url() is None:
        raise fail("PREFECT_API_URL is unset: name the Prefect server the worker polls")
    if limit is not None and limit < 1:
        raise fail("--limit must be at least 1")
    # A service: INFO, in APPROVALS_LOG_FORMAT; in JSON mode the Prefect worker it starts, and
    # each run's process, inherit the PREFECT_LOGGING_* variables this sets.
    configure_logging(settings_or_exit().approvals_log_format, logging.INFO)
    try:
        code, handed_back = run_worker(pool, limit)
    except WorkerError as e:
        raise fail(str(e)) from e
    if handed_back:
        typer.echo(f"handed {len(handed_back)} flow run(s) back to Prefect to be run again: "
                   + ", ".join(str(run_id) for run_id in handed_back), err=True)
    if code:
        raise typer.Exit(code)
