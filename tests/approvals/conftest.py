"""The composition root is tested on the same stacks as the layers it wires together."""

from tests.bot.conftest import bot, sandbox  # noqa: F401 - a bot on the sandbox Slack
from tests.flows.conftest import (  # noqa: F401 - a Prefect server and installed services
    env,
    prefect_database,
    real_env,
    sb,
    slack_sandbox,
)
