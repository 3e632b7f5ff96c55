"""A local stand-in for Slack: Web API, signed deliveries to the app, and a browser page."""

from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.driver import ActionResult, Driver, DriverError
from sandbox.records import ApiCall, Delivery
from sandbox.seed import Seed, default_seed, load_seed
from sandbox.server import SandboxServer
from sandbox.workspace import Workspace

__all__ = [
    "ActionResult",
    "ApiCall",
    "Delivery",
    "Driver",
    "DriverError",
    "ManualClock",
    "SandboxConfig",
    "SandboxServer",
    "Seed",
    "Workspace",
    "default_seed",
    "load_seed",
]
