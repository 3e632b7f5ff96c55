"""Command line: `python -m slack_approvals.sandbox --port 8765 --request-url ... --signing-secret ...`."""

from __future__ import annotations

import argparse
import os
import threading

import uvicorn

from slack_approvals.sandbox.app import create_app
from slack_approvals.sandbox.config import SandboxConfig
from slack_approvals.sandbox.driver import Driver
from slack_approvals.sandbox.faults import FaultInjector
from slack_approvals.sandbox.seed import load_seed
from slack_approvals.sandbox.workspace import Workspace


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
    return parser.parse_args(argv)


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
    print(f"Slack sandbox on {config.base_url}  (Web API: {config.base_url}/api/)", flush=True)
    print(f"Deliveries go to {config.request_url or '(nowhere yet: POST /sandbox/config)'}", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=1)
    finally:
        closing.set()
        driver.close()


if __name__ == "__main__":
    main()
