"""A local stand-in for Slack: Web API, signed deliveries to the app, a browser page, and a mail catcher."""

from slack_approvals.sandbox.clock import ManualClock
from slack_approvals.sandbox.config import SandboxConfig
from slack_approvals.sandbox.driver import ActionResult, Driver, DriverError
from slack_approvals.sandbox.mails import Mail
from slack_approvals.sandbox.records import ApiCall, Delivery
from slack_approvals.sandbox.seed import Seed, default_seed, load_seed
from slack_approvals.sandbox.server import SandboxServer
from slack_approvals.sandbox.workspace import Workspace

__all__ = [
    "ActionResult",
    "ApiCall",
    "Delivery",
    "Driver",
    "DriverError",
    "Mail",
    "ManualClock",
    "SandboxConfig",
    "SandboxServer",
    "Seed",
    "Workspace",
    "default_seed",
    "load_seed",
]
