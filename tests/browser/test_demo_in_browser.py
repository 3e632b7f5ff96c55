"""A newcomer's path: `approvals demo`, then people decide in the browser and flows finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slack_approvals.approvals.serving import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(480)]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "REDIS_URL", "APPROVALS_", "PREFECT_API"))}
    env.update({"APPROVALS_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200",
                "PREFECT_HOME": str(tmp_path / "prefect"), "APPROVALS_CHANNEL": "C01APPROVALS"})
    log = tmp_path / "demo.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "demo",
         "--port", str(port), "--timeout", "3m"],
        cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        # The demo prints the page's address once the bot behind it answers.
        if "Sandbox Slack:" in log.read_text():
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the demo did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield url, process, log
    if process.poll() is None:
        # SIGTERM lets the demo stop the Redis and Prefect servers it started.
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def act_as(page: Any, url: str, user: str, channel: str) -> None:
    page.goto(f"{url}/?user={user}&channel={channel}")
    page.get_by_test_id("messages").wait_for()


def approve(page: Any, title: str) -> None:
    print(f"{time.strftime('%X')} approving {title}", flush=True)
    card = page.get_by_test_id("message").filter(has_text=title).last
    card.get_by_test_id("button-approval.approve").click(timeout=60_000)
    page.get_by_test_id("confirm-ok").click()
    card.get_by_text("Approved", exact=False).first.wait_for()


def approve_first(page: Any, title: str) -> None:
    """The first of two approvals: the message keeps its buttons and counts the vote."""
    print(f"{time.strftime('%X')} approving {title} (1 of 2)", flush=True)
    card = page.get_by_test_id("message").filter(has_text=title).last
    card.get_by_test_id("button-approval.approve").click(timeout=60_000)
    page.get_by_test_id("confirm-ok").click()
    card.get_by_text("1 of 2", exact=False).first.wait_for()


def test_people_decide_in_the_browser_and_the_flows_finish(
        page: Any, demo: tuple[str, subprocess.Popen[str], Path]) -> None:
    url, process, log = demo
    # A flow started from the slash-command box, approved by someone else.
    act_as(page, url, "U01MAYA", "C01APPROVALS")
    page.get_by_test_id("slash-input").fill("/approvals run simple-approval title=Rotate-keys")
    page.get_by_test_id("slash-send").click()
    page.get_by_test_id("ephemeral").filter(has_text="Started").wait_for(timeout=60_000)
    act_as(page, url, "U02FRANK", "C01APPROVALS")
    approve(page, "Rotate-keys")

    # The scenario: finance and sales approve, engineering rejects with a reason, deploy approved.
    act_as(page, url, "U02FRANK", "C02FINANCE")
    approve(page, "Finance")
    act_as(page, url, "U05SARA", "C04SALES")
    approve(page, "Sales")
    act_as(page, url, "U03ERIN", "C03ENG")
    page.get_by_test_id("message").filter(has_text="Engineering").last.get_by_test_id(
        "button-approval.reject").click(timeout=60_000)
    modal = page.get_by_test_id("modal")
    modal.get_by_test_id("modal-input").fill("Hiring plan not agreed yet")
    modal.get_by_test_id("modal-submit").click()
    modal.wait_for(state="detached")
    act_as(page, url, "U01MAYA", "C05DEPLOYS")
    approve_first(page, "Deploy checkout")
    # The auditor is not in Slack: the mail in the sandbox's Inbox carries their Approve link.
    page.goto(f"{url}/?user=U01MAYA&tab=inbox")
    page.get_by_test_id("mail-item").filter(has_text="Deploy checkout").first.click(
        timeout=60_000)
    with page.context.expect_page() as opened:
        page.frame_locator("[data-testid='mail-html']").get_by_role("link", name="Approve").click()
    approval = opened.value
    approval.get_by_role("button", name="Confirm: approve").click()
    approval.get_by_role("heading", name="Your approval was recorded").wait_for()
    approval.close()

    # The demo stays up for flows started from the page until Ctrl+C, its normal end.
    deadline = time.monotonic() + 120
    while "Ctrl+C stops the demo" not in log.read_text():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the demo's flows did not finish"
        time.sleep(0.5)
    time.sleep(2)
    assert process.poll() is None, "the interactive demo exited by itself"
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo did not stop after Ctrl+C:\n{log.read_text()[-3000:]}")
    output = log.read_text()
    assert process.returncode == 0, output[-3000:]
    assert "approved: Finance, Sales; rejected: Engineering; timed out: -" in output
    assert "checkout 2.4.0 to production: approved and deployed" in output
    assert "Hiring plan not agreed yet" in output
