"""Done when: `approvals request --email-approver ... --wait` against `approvals bot` in HTTP
mode and an SMTP server on loopback: the mail's Approve link, opened and confirmed, makes the CLI
exit 0, and the same link used again changes nothing and says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from slack_approvals.approvals.serving import free_port
from slack_approvals.approvals.settings import SettingsError, load_settings
from tests.bot.fixtures import APPROVALS_CHANNEL, BOT_TOKEN, SIGNING_SECRET, BotStack
from tests.bot.mailbox import Mailbox, csrf_of, links, running_mailbox
from tests.conftest import RedisServer

ANN = "ann@example.com"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with running_mailbox() as box:
        yield box


def environment(bot: BotStack, redis_server: RedisServer, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": bot.sandbox.api_url, "REDIS_URL": redis_server.url,
           "APPROVALS_CHANNEL": APPROVALS_CHANNEL, "APPROVALS_WAIT_SLICE_SECONDS": "1", **extra}
    env.pop("SLACK_APP_TOKEN", None)
    return env


@pytest.fixture
def bot_process(bot: BotStack, redis_server: RedisServer, mailbox: Mailbox,
                tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = environment(bot, redis_server, APPROVALS_SMTP_URL=mailbox.url,
                      APPROVALS_MAIL_FROM="Approvals <approvals@example.com>",
                      APPROVALS_PUBLIC_URL=url, APPROVALS_SWEEP_SECONDS="0.2")
    process = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "bot", "--port", str(port), "--host", "127.0.0.1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while process.poll() is None:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    if process.poll() is not None or time.monotonic() > deadline:
        process.kill()
        pytest.fail(f"approvals bot did not start: {process.communicate()[0][-2000:]}")
    bot.sandbox.set_request_url(f"{url}/slack/events")
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait()


def test_an_emailed_approve_link_ends_the_wait(bot: BotStack, redis_server: RedisServer,
                                              mailbox: Mailbox, tmp_path: Path,
                                              bot_process: tuple[subprocess.Popen[str], str]) -> None:
    service, _ = bot_process
    request = subprocess.Popen(
        [sys.executable, "-m", "slack_approvals", "request", "--title", "Pay invoice 4711",
         "--email-approver", ANN, "--fact", "amount=12,500 EUR", "--timeout", "10m", "--wait"],
        cwd=tmp_path, env=environment(bot, redis_server), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        (mail,) = mailbox.wait_for(ANN, timeout=60)
        approve = links(mail)["approve"]
        with httpx.Client(timeout=10) as http:
            page = http.get(approve)
            assert "Pay invoice 4711" in page.text and ANN in page.text
            csrf = csrf_of(page.text)
            done = http.post(approve, data={"csrf": csrf, "reason": ""})
            assert "Your approval was recorded" in done.text
            out, err = request.communicate(timeout=30)
            assert request.returncode == 0, err
            assert f"approved by mailto:{ANN}" in out
            request_id = out.split()[0]

            # The same link again, opened or posted: nothing changes, and the page says so.
            again = http.get(approve)
            assert again.status_code == 409 and "This link has been used" in again.text
            posted = http.post(approve, data={"csrf": csrf, "reason": ""})
            assert posted.status_code == 409 and "This link has been used" in posted.text
        stored = bot.store.get(request_id)
        assert len(stored.votes) == 1
        events = [e.event for e in bot.store.audit(request_id)]
        assert events == ["created", "posted", "mailed", "vote", "approved"]
        # The Slack message shows the decision, as after a click.
        bot.wait_message(stored, "Approved")
    finally:
        if request.poll() is None:
            request.kill()
            request.wait()
    service.send_signal(signal.SIGTERM)
    log, _ = service.communicate(timeout=30)
    assert service.returncode == 0, log
    # Links are bearer tokens: the bot never writes one to its log.
    token = approve.rsplit("/", 1)[1]
    assert token not in log


def test_a_bad_address_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "APPROVALS_CHANNEL": APPROVALS_CHANNEL}
    done = subprocess.run(
        [sys.executable, "-m", "slack_approvals", "request", "--title", "t",
         "--email-approver", "ann at example.com"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        "error: email_approvers.0: 'ann at example.com' is not a mail address "
        "(like ann@example.com)"]


@pytest.mark.parametrize(("settings", "message"), [
    ({"approvals_smtp_url": "http://mail.example.com"}, "must start with smtp://"),
    ({"approvals_smtp_url": "smtp://me:hunter2@"}, "names no host"),
    ({"approvals_mail_from": "approvals"}, "must be a mail address"),
    ({"approvals_public_url": "approvals.example.com"}, "must be the http(s) address"),
    # The page's form and cookie are rooted at /approval/: a prefix could never work.
    ({"approvals_public_url": "https://example.com/approvals"}, "with no path"),
    ({"approvals_trusted_proxies": "*"}, "'*' is not allowed"),
    ({"approvals_trusted_proxies": "10.0.0.1, proxy.internal"}, "'proxy.internal' is not an IP"),
])
def test_mail_settings_are_checked_without_echoing_a_password(settings: dict[str, str],
                                                              message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(**settings)
    assert message in str(raised.value) and "hunter2" not in str(raised.value)


@pytest.mark.parametrize("settings", [
    {"approvals_smtp_url": "smtp://me:hunter2@mail.example.com:notaport"},
    {"approvals_smtp_url": "smtp://me:hunter2@mail.example.com/path"},
    {"slack_bot_token": "hunter2-not-a-bot-token"},
    {"slack_signing_secret": "hunter2"},
    {"slack_app_token": "hunter2-app"},
])
def test_no_secret_rides_along_in_the_error_or_its_chain(settings: dict[str, str]) -> None:
    """pydantic's error repeats the input; a log of the traceback must not show it."""
    with pytest.raises(SettingsError) as raised:
        load_settings(**settings)
    chain: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert chain == [raised.value]
    assert "hunter2" not in "".join(traceback.format_exception(raised.value))


def test_trusted_proxies_are_read_as_a_list() -> None:
    assert load_settings().approvals_trusted_proxies == "127.0.0.1"
    assert load_settings(approvals_trusted_proxies=" 10.0.0.1 , 10.8.0.0/16").\
        approvals_trusted_proxies == "10.0.0.1,10.8.0.0/16"


def test_an_smtp_url_needs_a_sender_and_a_public_url() -> None:
    assert load_settings().mail_settings() is None
    with pytest.raises(SettingsError, match="APPROVALS_MAIL_FROM is missing"):
        load_settings(approvals_smtp_url="smtp://mail.example.com").mail_settings()
    with pytest.raises(SettingsError, match="APPROVALS_PUBLIC_URL is missing"):
        load_settings(approvals_smtp_url="smtps://u:p%40ss@mail.example.com",
                      approvals_mail_from="a@example.com").mail_settings()
    target, sender, url = load_settings(
        approvals_smtp_url="smtps://u:p%40ss@mail.example.com",
        approvals_mail_from="Approvals <a@example.com>",
        approvals_public_url="https://approvals.example.com/").mail_settings() or ((), "", "")
    assert (target.host, target.port, target.implicit_tls, target.username, target.password) == (
        "mail.example.com", 465, True, "u", "p@ss")
    assert "p@ss" not in repr(target)
    assert (sender, url) == ("Approvals <a@example.com>", "https://approvals.example.com")
