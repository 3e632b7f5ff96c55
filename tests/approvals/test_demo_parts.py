"""Parts of `approvals demo` that a whole run shows only on a terminal: log lines above the
live table, people and channels by name, the demo's own database."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console
from slack_sdk import WebClient

from slack_approvals.approvals.demo import DEMO_DB, People, demo_database, logs_above
from slack_approvals.sandbox.config import DEFAULT_BOT_TOKEN
from slack_approvals.sandbox.server import SandboxServer


@pytest.fixture(scope="module")
def client() -> Iterator[WebClient]:
    with SandboxServer() as sandbox:
        yield WebClient(token=DEFAULT_BOT_TOKEN, base_url=sandbox.api_url)


def test_log_lines_go_through_the_live_console_and_handlers_come_back() -> None:
    logger = logging.getLogger("tests.demo.tearing")
    terminal_handler = logging.StreamHandler(sys.stderr)
    terminal_handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(terminal_handler)
    logger.propagate = False
    out = io.StringIO()
    console = Console(file=out, width=100)
    try:
        with logs_above(console):
            assert terminal_handler not in logger.handlers  # it would write past the table
            logger.warning("approval request x timed out")
        assert out.getvalue() == "WARNING approval request x timed out\n"
        assert logger.handlers == [terminal_handler]
    finally:
        logger.removeHandler(terminal_handler)


def test_people_and_channels_by_name(client: WebClient) -> None:
    people = People(client)
    assert people.name("U01MAYA") == "Maya Manager"
    assert people.name("timeout") == "timeout"  # not a person
    assert people.name("U0NOBODY") == "U0NOBODY"  # unknown: the id, not an error
    assert people.channel("C05DEPLOYS") == "#deploys"
    assert people.channel("#approvals") == "#approvals"


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6390/0", f"redis://127.0.0.1:6390/{DEMO_DB}"),
    ("redis://127.0.0.1:6390", f"redis://127.0.0.1:6390/{DEMO_DB}"),
])
def test_the_demo_keeps_to_its_own_database(url: str, expected: str) -> None:
    assert demo_database(url) == expected
