"""`approvals run` and `approvals serve`: the registered flows from the command line."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from prefect.client.schemas.objects import State
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_engine import run_flow_async
from prefect.types.entrypoint import EntrypointType
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from slack_approvals.flows.errors import FlowsError
from slack_approvals.flows.params import FlowParams
from slack_approvals.flows.registry import (
    DEPLOYMENT_NAME,
    REGISTRY,
    RegisteredFlow,
    get_flow,
    parse_pairs,
    parse_params,
)
from slack_approvals.flows.services import BOOTSTRAP_ENV

from .cli_support import EXIT_ERROR, fail, settings_or_exit
from .handing_back import serve_handing_back
from .launching import install_services, prefect_api_url

BOOTSTRAP = "slack_approvals.approvals.launching:install_services_from_environment"


async def run_locally(entry: RegisteredFlow, params: FlowParams) -> tuple[State[Any], Any]:
    """Run in this process; Prefect starts its temporary server when PREFECT_API_URL is unset."""
    state = await run_flow_async(entry.flow, parameters={"params": params}, return_type="state")
    assert isinstance(state, State)
    return state, await state.aresult(raise_on_failure=False)


def served_deployments() -> list[RunnerDeployment]:
    """Every registered flow as `<flow>/slack-approvals`, imported by module path in its run."""
    deployments = []
    for entry in REGISTRY.values():
        deployment = entry.flow.to_deployment(name=DEPLOYMENT_NAME, description=entry.description,
                                              tags=["slack-approvals"],
                                              entrypoint_type=EntrypointType.MODULE_PATH)
        assert isinstance(deployment, RunnerDeployment)  # no event loop here: built in place
        deployments.append(deployment)
    return deployments


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
    """Run one registered flow here and print its result (exit 1 if it fails)."""
    if flow is None:
        for name, entry in sorted(REGISTRY.items()):
            typer.echo(f"{name:24} {entry.description}")
        return
    settings = settings_or_exit()
    install_services(settings)  # first: parameter defaults come from it; connects on use only
    try:
        entry, params = parse_params(flow, parse_pairs(param))
    except FlowsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_ERROR) from e
    where = prefect_api_url() or "Prefect's temporary local server (PREFECT_API_URL is unset)"
    typer.echo(f"running {entry.name} on {where}")
    typer.echo(f"parameters: {params.model_dump_json()}")
    state, result = asyncio.run(run_locally(entry, params))
    if not state.is_completed():
        typer.echo(f"error: {entry.name} ended {state.name}: {state.message}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{entry.name} completed:")
    typer.echo(show(result))


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
    # SIGTERM (a restart) hands the running flow runs back to Prefect instead of cancelling
    # them; the next `approvals serve` runs them again and their gates wait on.
    handed_back = serve_handing_back(served_deployments(), limit)
    if handed_back:
        typer.echo(f"handed {len(handed_back)} flow run(s) back to Prefect to be run again: "
                   + ", ".join(str(run_id) for run_id in handed_back), err=True)
