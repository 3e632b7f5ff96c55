"""`approvals run` and `approvals serve`: the registered flows from the command line."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import typer
from prefect import serve as prefect_serve
from prefect.client.schemas.objects import State
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_engine import run_flow_async
from prefect.types.entrypoint import EntrypointType
from pydantic import BaseModel

from slack_approvals.flows.errors import FlowsError
from slack_approvals.flows.params import FlowParams
from slack_approvals.flows.registry import (
    DEPLOYMENT_NAME,
    REGISTRY,
    RegisteredFlow,
    parse_pairs,
    parse_params,
)
from slack_approvals.flows.services import BOOTSTRAP_ENV

from .cli_support import EXIT_ERROR, settings_or_exit
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
    """Serve every registered flow as the deployment `<flow>/slack-approvals`."""
    settings = settings_or_exit()
    install_services(settings)
    # Each flow run starts in a new process, which installs the services the same way.
    os.environ[BOOTSTRAP_ENV] = BOOTSTRAP
    if prefect_api_url() is None:
        typer.echo("warning: PREFECT_API_URL is unset, so the deployments live on a temporary "
                   "server that only this process can reach", err=True)
    prefect_serve(*served_deployments(), limit=limit)
