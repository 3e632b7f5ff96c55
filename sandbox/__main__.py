"""Command line: `python -m slack_approvals.sandbox --port 8765 --request-url ... --signing-secret ...`.

The mail catcher listens beside it: on `--mail-port` (0 picks a free port), else on 1025 when that
is free and on any free port when it is not (several sandboxes can run at once); it prints the port.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

import uvicorn

from slack_approvals.sandbox.app import create_app
from slack_approvals.sandbox.catcher import MailCatcher
from slack_approvals.sandbox.config import SandboxConfig
from slack_approvals.sandbox.driver import Driver
from slack_approvals.sandbox.faults import FaultInjector
from slack_approvals.sandbox.seed import load_seed
from slack_approvals.sandbox.workspace import Workspace

DEFAULT_MAIL_PORT = 1025  # what local mail catchers usually listen on; unprivileged


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = SandboxConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m slack_approvals.sandbox",
                                     description="A local stand-in for Slack.")
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8765")))
    parser.add_argument(
        "--request-url", default=env.request_url, help="where the app receives Slack requests"
    )
    parser.add_argument("--signing-secret", default=env.signing_secret)
    parser.add_argument("--bot-token", default=env.bot_token)
    parser.add_argument("--app-token", default=env.app_token, help="app-level token for Socket Mode")
    parser.add_argument("--verification-token", default=env.verification_token)
    parser.add_argument(
        "--seed", default=os.environ.get("SANDBOX_SEED"), help="JSON file of users, groups, channels"
    )
    configured = os.environ.get("SANDBOX_MAIL_PORT")
    parser.add_argument(
        "--mail-port",
        type=int,
        default=int(configured) if configured else None,
        help=f"SMTP port of the mail catcher whose mails show in the page's Inbox (0: any free port; "
        f"unset: {DEFAULT_MAIL_PORT} if free, else any free port)",
    )
    parser.add_argument("--no-mail", action="store_true", help="run without the mail catcher")
    return parser.parse_args(argv)


def start_catcher(driver: Driver, host: str, port: int | None) -> MailCatcher:
    """A port asked for must be had: taken, it fails with a plain message (not a trace)."""
    try:
        if port is None:
            try:
                catcher = MailCatcher(driver.workspace.inbox, host=host, port=DEFAULT_MAIL_PORT).start()
            except OSError:
                catcher = MailCatcher(driver.workspace.inbox, host=host, port=0).start()
        else:
            catcher = MailCatcher(driver.workspace.inbox, host=host, port=port).start()
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"{exc}; pick another with --mail-port (0: any free port)", file=sys.stderr)
        raise SystemExit(2) from None
    driver.config.smtp_url = catcher.url
    return catcher


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = SandboxConfig(
        signing_secret=args.signing_secret,
        bot_token=args.bot_token,
        app_token=args.app_token,
        request_url=args.request_url,
        verification_token=args.verification_token,
        base_url=f"http://{args.host}:{args.port}",
    )
    workspace = Workspace(load_seed(args.seed) if args.seed else None)
    driver = Driver(workspace, config)
    closing = threading.Event()
    app = create_app(driver, FaultInjector(), closing)
    catcher = None if args.no_mail else start_catcher(driver, args.host, args.mail_port)
    print(f"Slack sandbox on {config.base_url}  (Web API: {config.base_url}/api/)", flush=True)
    print(f"Deliveries go to {config.request_url or '(nowhere yet: POST /sandbox/config)'}", flush=True)
    if catcher is not None:
        print(f"Mail catcher on {catcher.url}  (Inbox: {config.base_url}/?tab=inbox)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=1)
    finally:
        closing.set()
        if catcher is not None:
            catcher.stop()
        driver.close()


if __name__ == "__main__":
    main()
