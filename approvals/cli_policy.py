"""`approvals policy check | explain | show`: the approval policy from a shell or CI job."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slack_approvals.core.errors import BadInput
from slack_approvals.flows.errors import FlowsError
from slack_approvals.flows.registry import REGISTRY, parse_pairs
from slack_approvals.policy.document import check_policy
from slack_approvals.policy.opening import Draft
from slack_approvals.state.errors import StoreError

from .cli_requests import parse_facts
from .cli_support import EXIT_ERROR, fail
from .explaining import explain, explanation_text, flow_draft
from .policies import fallback_of, policy_source
from .settings import DEFAULT_POLICY_FILE, Settings
from .wiring import sync_store


def check_command(path: Path | None, settings: Settings | None) -> None:
    """Exit 0 when the file is a valid policy, else 3 with `PATH:LINE: message` lines."""
    if path is None:
        path = (settings.policy_file() if settings is not None else None) or Path(DEFAULT_POLICY_FILE)
    try:
        text = path.read_text()
    except OSError as e:
        raise fail(f"{path}: {e.strerror or e}") from e
    problems = check_policy(text, str(path), list(REGISTRY))
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(EXIT_ERROR)
    typer.echo(f"{path}: valid")


def explain_command(settings: Settings, flow: str | None, param: list[str], gate: str | None,
                    requester: str | None, fact: list[str], as_json: bool) -> None:
    """Which rule matches and what it decides; parameters left out take the flow's defaults."""
    facts = parse_facts(fact)
    try:
        if flow is None:
            if param:
                raise fail("-p names a flow's parameters: give the FLOW too")
            draft = Draft(title="explained request", facts=facts, gate=gate,
                          requester=requester or settings.approvals_requester)
        else:
            draft = flow_draft(flow, parse_pairs(param), gate=gate,
                               requester=requester or settings.approvals_requester, facts=facts)
        policy = policy_source(settings).current()
        settled = explain(policy, draft, fallback_of(settings))
    except (FlowsError, BadInput, ValueError) as e:
        raise fail(str(e)) from e
    if as_json:
        typer.echo(json.dumps({"flow": draft.flow, "gate": draft.gate, "requester": draft.requester,
                               **settled.as_json()}, indent=2))
        return
    typer.echo(f"policy: {policy.origin} ({policy.hash})")
    typer.echo(explanation_text(settled, draft.flow, draft.gate).replace("*", ""))


def show_command(settings: Settings, policy_hash: str) -> None:
    """The text of the policy stored under HASH, as it routed requests then."""
    try:
        text = sync_store(settings).policy_text(policy_hash.strip().lower())
    except StoreError as e:
        raise fail(str(e)) from e
    if text is None:
        raise fail(f"no policy {policy_hash} is kept (unknown, or older than the retention)")
    typer.echo(text, nl=not text.endswith("\n"))
