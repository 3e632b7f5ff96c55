"""The `approvals` command line: one entry point for the bot, the store and the flows."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError

from slack_approvals.state.models import Outcome
from slack_approvals.state.private_server import ensure_private_server, stop_private_server

from . import cli_requests
from .cli_support import EXIT_ERROR, fail, one_line, settings_or_exit
from .logformat import configure_logging
from .settings import SettingsError, load_log_format

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Slack-button approvals for Prefect flows, backed by Redis.")
redis_app = typer.Typer(no_args_is_help=True, help="The private Redis used when REDIS_URL is unset.")
app.add_typer(redis_app, name="redis")


@app.callback()
def _logging() -> None:
    """Every command: log lines as APPROVALS_LOG_FORMAT says, from its first line on."""
    try:
        configure_logging(load_log_format())
    except SettingsError as e:
        raise fail(str(e)) from e
policy_app = typer.Typer(no_args_is_help=True,
                         help="The approval policy: who approves what (APPROVALS_POLICY).")
app.add_typer(policy_app, name="policy")


@redis_app.command("start")
def redis_start() -> None:
    """Start (or find) the project folder's private Redis and print its URL."""
    settings = settings_or_exit()
    server = ensure_private_server(settings.approvals_data_dir / "redis")
    state = "started" if server.started_now else "already running"
    typer.echo(f"{server.url} ({state}, pid {server.pid}, {server.binary})")


@redis_app.command("stop")
def redis_stop() -> None:
    """Stop the private Redis; its AOF stays under the data folder for next time."""
    settings = settings_or_exit()
    stopped = stop_private_server(settings.approvals_data_dir / "redis")
    typer.echo("stopped" if stopped else "no private Redis was running")


@policy_app.command("check")
def policy_check(path: Annotated[Path | None, typer.Argument(
        help="Policy file (default: APPROVALS_POLICY, else approvals-policy.yaml).")] = None) -> None:
    """Exit 0 when the policy is valid, else 3 with one `PATH:LINE: message` per problem."""
    from .cli_policy import check_command

    check_command(path, None if path is not None else settings_or_exit())


@policy_app.command("explain")
def policy_explain(
    flow: Annotated[str | None, typer.Argument(help="Flow name; omit for an `approvals request`.")] = None,
    param: Annotated[list[str], typer.Option(
        "--param", "-p", help="key=value of the flow (repeatable); the rest take defaults.")] = [],  # noqa: B006
    gate: Annotated[str | None, typer.Option(help="Gate name (default: the flow's first).")] = None,
    requester: Annotated[str | None, typer.Option(help="Who asks (a Slack user id).")] = None,
    fact: Annotated[list[str], typer.Option(help="label=value fact (repeatable).")] = [],  # noqa: B006
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Which rule matches, and who would be asked (or auto-approve / deny, with the reason)."""
    from .cli_policy import explain_command

    explain_command(settings_or_exit(), flow, param, gate, requester, fact, json_out)


@policy_app.command("show")
def policy_show(policy_hash: Annotated[str, typer.Argument(
        metavar="HASH", help="The policy hash a request's audit names.")]) -> None:
    """Print the policy text kept under HASH: what routed requests then."""
    from .cli_policy import show_command

    show_command(settings_or_exit(), policy_hash)


@app.command()
def bot(
    port: Annotated[int, typer.Option(help="HTTP port (HTTP mode).")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on (HTTP mode).")] = "0.0.0.0",
) -> None:
    """Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP at /slack/events."""
    settings = settings_or_exit()
    # Before Prefect loads: its logging config then keeps this root handler.
    configure_logging(settings.approvals_log_format, logging.INFO)
    from functools import partial

    from prometheus_client import CollectorRegistry

    from slack_approvals.bot.metrics import MetricsServer
    from slack_approvals.bot.service import serve_http, serve_socket_mode

    from .launching import InProcessLauncher, default_launcher, emit_decision_event
    from .runtime import build_runtime

    metrics_port = settings.approvals_metrics_port
    if metrics_port is not None and settings.slack_app_token is None and metrics_port == port:
        raise fail(f"APPROVALS_METRICS_PORT {metrics_port} is the bot's own --port: the metrics "
                   "need a port of their own, never the public Slack endpoint")
    if (metrics_port is not None and settings.slack_app_token is not None
            and metrics_port == settings.approvals_web_port):
        # In Socket Mode the public port is the approval page's.
        raise fail(f"APPROVALS_METRICS_PORT {metrics_port} is APPROVALS_WEB_PORT: the metrics "
                   "need a port of their own, never the public approval page's")
    registry = CollectorRegistry()
    from .policies import reload_on_sighup

    reload_on_sighup()  # SIGHUP re-reads the approval policy file, as a change of it does
    launcher = default_launcher(settings)
    socket_mode = settings.slack_app_token is not None
    try:
        runtime = build_runtime(settings, launcher=launcher, on_decision=emit_decision_event,
                                socket_mode=socket_mode, registry=registry)
    except (BoltError, OSError) as e:  # Bolt checks the token with auth.test as it starts
        raise fail(slack_refusal(e, "SLACK_BOT_TOKEN", settings.slack_api_url)) from e
    if metrics_port is not None:  # its thread ends with the process
        try:
            MetricsServer(registry, settings.approvals_metrics_host, metrics_port)
        except OSError as e:
            raise fail(f"could not serve metrics on {settings.approvals_metrics_host}:"
                       f"{metrics_port} (APPROVALS_METRICS_PORT): {e}") from e
        typer.echo(f"approvals bot: metrics on {settings.approvals_metrics_host}:{metrics_port}"
                   "/metrics")
    # Runs in this process end with it: on SIGTERM their requests are cancelled with a reason.
    on_stop = (partial(launcher.stop, runtime.deps.closer)
               if isinstance(launcher, InProcessLauncher) else None)
    if settings.slack_app_token is not None:
        typer.echo("approvals bot: Socket Mode")
        try:
            # The web approval page of mailed links needs an HTTP server of its own here.
            from slack_approvals.bot.approval_page import page_app

            page = page_app(runtime.pages) if settings.approvals_public_url else None
            if page is not None:
                typer.echo(f"approvals bot: approval page on {host}:{settings.approvals_web_port}")
            serve_socket_mode(runtime.app, settings.slack_app_token.get_secret_value(),
                              runtime.deps, runtime.sweeper, on_stop, page=page, page_host=host,
                              page_port=settings.approvals_web_port,
                              trusted_proxies=settings.approvals_trusted_proxies)
        except (SlackApiError, OSError) as e:  # apps.connections.open refused the app token
            raise fail(slack_refusal(e, "SLACK_APP_TOKEN", settings.slack_api_url)) from e
    else:
        typer.echo(f"approvals bot: HTTP on {host}:{port}, request URL path /slack/events")
        serve_http(runtime.web, runtime.deps, runtime.sweeper, host, port, on_stop,
                   trusted_proxies=settings.approvals_trusted_proxies)


def slack_refusal(error: Exception, setting: str, api_url: str) -> str:
    """One line for a token Slack refused (or a Slack that could not be reached)."""
    if isinstance(error, OSError):
        return f"could not reach Slack at {api_url}: {error}"
    if isinstance(error, SlackApiError):
        code = str(error.response.get("error", "")) if error.response is not None else ""
    else:
        found = re.search(r"'error': '([a-z_]+)'", str(error))
        code = found.group(1) if found else ""
    where = ("Basic Information, App-Level Tokens (xapp-...)" if setting == "SLACK_APP_TOKEN"
             else "OAuth & Permissions, Bot User OAuth Token (xoxb-...)")
    return f"Slack refused {setting} ({code or error}): copy it again from the app's {where}"


@app.command()
def request(
    title: Annotated[str, typer.Option(help="What is being approved.")],
    approver: Annotated[list[str], typer.Option(help="Approver user id (repeatable).")] = [],  # noqa: B006
    group: Annotated[list[str], typer.Option(help="Approver user-group id (repeatable).")] = [],  # noqa: B006
    email_approver: Annotated[list[str], typer.Option(
        help="Approver outside Slack, asked by mail with approval links (repeatable).")] = [],  # noqa: B006
    summary: Annotated[str, typer.Option(help="Longer description, shown as typed.")] = "",
    fact: Annotated[list[str], typer.Option(help="label=value shown as a field (repeatable).")] = [],  # noqa: B006
    quorum: Annotated[int | None, typer.Option(help="Approvals needed (default 1).")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel id or #name.")] = None,
    timeout: Annotated[str | None, typer.Option(
        help="How long to wait: 90s, 30m, 2h, 1d (default 24h).")] = None,
    timeout_outcome: Annotated[Outcome | None, typer.Option(  # click names the choices
        help="approve or reject when time runs out (default reject).")] = None,
    requester: Annotated[str | None, typer.Option(help="Requester's user id (cannot self-approve).")] = None,
    allow_self_approval: Annotated[bool | None, typer.Option(
        help="Let the requester approve (default: not).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same request.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait; exit 0 approve, 1 reject, 2 timeout.")] = False,
    remind_every: Annotated[str | None, typer.Option(
        help="Remind who has not voted, in the thread and by DM: 30m, 4h.")] = None,
    remind_limit: Annotated[int | None, typer.Option(help="At most this many reminders (default 3).")] = None,
    escalate_after: Annotated[str | None, typer.Option(
        help="After this long (4h) --escalate-to may vote too.")] = None,
    escalate_to: Annotated[list[str], typer.Option(
        help="User or user-group id eligible from --escalate-after on (repeatable).")] = [],  # noqa: B006
    escalate_quorum: Annotated[int | None, typer.Option(
        min=1, help="Approvals needed from --escalate-after on (default: --quorum).")] = None,
) -> None:
    """Post an approval request to Slack (and optionally wait for the decision).

    The approval policy routes it: a matching rule's approvers, quorum, channel and timeouts
    win over these flags (and under `lock: true` approvers may not be named at all)."""
    cli_requests.request_command(settings_or_exit(), title, summary, fact, approver, group, quorum,
                                 channel, timeout, timeout_outcome, requester, allow_self_approval,
                                 idempotency_key, wait, remind_every=remind_every,
                                 remind_limit=remind_limit, escalate_after=escalate_after,
                                 escalate_to=escalate_to, escalate_quorum=escalate_quorum,
                                 email_approvers=email_approver)


@app.command()
def pending(
    user: Annotated[str | None, typer.Option(help="Only what this user may decide.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """List pending requests, soonest deadline first."""
    cli_requests.pending_command(settings_or_exit(), user, json_out)


@app.command()
def show(request_id: str,
         json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """Show one request: spec, votes, decision."""
    cli_requests.show_command(settings_or_exit(), request_id, json_out)


@app.command()
def audit(request_id: str,
          json_out: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """Every event of a request, in order."""
    cli_requests.audit_command(settings_or_exit(), request_id, json_out)


@app.command()
def cancel(request_id: str,
           reason: Annotated[list[str] | None, typer.Argument(
               help="Why, shown in Slack and kept in the audit.")] = None) -> None:
    """Cancel a pending request as the system: its message shows it, its flow sees it."""
    from .cli_closing import cancel_command

    cancel_command(settings_or_exit(), request_id, " ".join(reason or []) or None)


@app.command()
def demo(
    auto: Annotated[bool, typer.Option(help="Scripted people click by themselves; exits when done.")] = False,
    port: Annotated[int, typer.Option(help="Port of the sandbox page.")] = 8765,
    timeout: Annotated[str, typer.Option(help="How long each request waits (default 15s with --auto, "
                                               "10m otherwise).")] = "",
) -> None:
    """The whole product locally: private Redis, a sandbox Slack, the bot, and real flows."""
    from slack_approvals.core.durations import parse_duration

    from .demo import port_taken, run_demo
    from .demo_scenario import demo_scenario

    settings = settings_or_exit()
    try:
        wait = parse_duration(timeout or ("15s" if auto else "10m"))
    except ValueError as e:
        typer.echo(f"error: --timeout: {e}", err=True)
        raise typer.Exit(EXIT_ERROR) from e
    if port_taken(port):  # before anything starts, so nothing is left to stop
        raise fail(f"port {port} is already in use: choose another with --port (e.g. --port "
                   f"{port + 1}, or --port 0 for any free port)")
    raise typer.Exit(run_demo(settings, demo_scenario, auto=auto, port=port, decision_timeout=wait))


# --help is this command's own: with a flow name it lists that flow's parameters.
@app.command("run", context_settings={"help_option_names": []})
def run(
    ctx: typer.Context,
    flow: Annotated[str | None, typer.Argument(help="Flow name; omit to list the flows.")] = None,
    extra: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
    param: Annotated[list[str], typer.Option(
        "--param", "-p", help="key=value; lists comma-separated (repeatable).")] = [],  # noqa: B006
    show_help: Annotated[bool, typer.Option(
        "--help", "-h", help="Show this message; after a flow name, that flow's parameters.")] = False,
) -> None:
    """Start one registered flow: a deployment run when PREFECT_API_URL is set (a Prefect
    worker or `approvals serve` runs it), else here, printing its result (exit 1 if it fails).

    `approvals run <flow> --help` lists the flow's parameters."""
    if extra:  # `approvals run deploy-approval version=2.4.0`
        raise fail(f"parameters go after -p: approvals run {flow} "
                   + " ".join(f"-p {pair}" for pair in extra))
    from .cli_flows import flow_help, run_command  # Prefect loads only for the commands that need it

    if show_help:
        if flow is None:
            typer.echo(ctx.get_help())
        else:
            flow_help(flow)
        return
    run_command(flow, param)


@app.command("serve")
def serve(limit: Annotated[int | None, typer.Option(help="Most flow runs at once.")] = None) -> None:
    """Serve every registered flow as the deployment `<flow>/slack-approvals`."""
    from .cli_flows import serve_command

    serve_command(limit)


@app.command("worker")
def worker(
    pool: Annotated[str, typer.Option(help="Prefect work pool to take flow runs from.")],
    limit: Annotated[int | None, typer.Option(help="Most flow runs at once.")] = None,
) -> None:
    """A Prefect process worker for POOL whose SIGTERM hands its runs back to Prefect to be run
    again (a stock `prefect worker` kills them)."""
    from .cli_flows import worker_command

    worker_command(pool, limit)


@app.command("deploy")
def deploy(
    pool: Annotated[str, typer.Option(help="Prefect work pool (created as a process pool if missing).")],
    result_storage: Annotated[str | None, typer.Option(
        help="Prefect storage block every worker shares for results, e.g. "
             "local-file-system/approvals-results.")] = None,
    working_dir: Annotated[Path | None, typer.Option(
        help="Absolute folder each run starts in on the worker (its .env and policy file).")] = None,
) -> None:
    """Deploy every registered flow as `<flow>/slack-approvals` to a work pool that
    `prefect worker start --pool NAME --type process` serves; re-running updates them."""
    from .cli_flows import deploy_command

    deploy_command(pool, result_storage, working_dir)


def main() -> None:
    try:
        # Not standalone: click would exit 2 on a usage error, which `request --wait` uses
        # for "timed out".
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as e:
        # Typer's (vendored) click exceptions: usage errors and the like know how to show
        # themselves; Redis, Slack and our own errors are one line; any other exception is a
        # bug and keeps its traceback. Never exit 1 or 2: those are decisions.
        show = getattr(e, "show", None)
        if callable(show) and isinstance(getattr(e, "exit_code", None), int):
            if isinstance(getattr(e, "message", None), str):  # typer passes pydantic's prefix on
                e.message = e.message.replace("Value error, ", "")  # type: ignore[attr-defined]
            show()
            sys.exit(EXIT_ERROR)
        line = one_line(e)
        if line is None:
            raise
        typer.echo(f"error: {line}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)
