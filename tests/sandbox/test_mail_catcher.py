"""The mail catcher: real mail sent with smtplib to its SMTP port, read back through the driver and HTTP."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import IO

import httpx
import pytest

from slack_approvals.sandbox import SandboxServer
from slack_approvals.sandbox.__main__ import DEFAULT_MAIL_PORT
from slack_approvals.sandbox.catcher import MAX_MAIL_BYTES, MailCatcher
from slack_approvals.sandbox.changes import Changes
from slack_approvals.sandbox.mails import MAILS_KEPT, Inbox

FROM = "Approvals <approvals@example.com>"
ZOE = "zoe@example.com"


def mail(
    subject: str = "Approval needed: laptop",
    *,
    to: str = f"Zoe <{ZOE}>",
    text: str | None = "Approve: https://approvals.example/e/approve?t=abc\n",
    html: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = FROM
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Mon, 30 Nov 2026 06:00:00 +0000"
    message["Message-ID"] = "<m1@approvals.example>"
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    return message


@pytest.fixture
def smtp(sb: SandboxServer) -> Iterator[smtplib.SMTP]:
    with smtplib.SMTP("127.0.0.1", sb.mail_port, timeout=10) as client:
        yield client


def test_a_plain_mail_is_kept_with_its_headers_text_and_links(sb: SandboxServer, smtp: smtplib.SMTP) -> None:
    smtp.send_message(mail(text="Riley asks for a laptop.\nApprove: https://approvals.example/e/approve?t=abc.\n"))
    got = sb.wait_for_mail(ZOE)
    assert got.from_ == (FROM,)
    assert got.to == (f"Zoe <{ZOE}>",)
    assert got.envelope_from == "approvals@example.com"
    assert got.envelope_to == (ZOE,)
    assert got.subject == "Approval needed: laptop"
    assert got.date == "2026-11-30T06:00:00+00:00"
    assert got.message_id == "<m1@approvals.example>"
    assert got.text == "Riley asks for a laptop.\nApprove: https://approvals.example/e/approve?t=abc.\n"
    assert got.html == ""
    assert got.links == ("https://approvals.example/e/approve?t=abc",)  # the full stop is not the URL's
    assert got.received_at == sb.workspace.now()


def test_a_multipart_mail_keeps_both_parts_and_the_html_links_first(
    sb: SandboxServer, smtp: smtplib.SMTP
) -> None:
    html = (
        '<p><a href="https://approvals.example/e/approve?t=abc&amp;v=1">Approve</a>'
        ' <a href="https://approvals.example/e/reject?t=def">Reject</a>'
        ' <a href="mailto:x@example.com">x</a></p>'
    )
    text = "Approve: https://approvals.example/e/approve?t=abc&v=1\nHelp: https://approvals.example/help\n"
    smtp.send_message(mail(text=text, html=html))
    got = sb.wait_for_mail(ZOE)
    assert got.text == text
    assert got.html == html + "\n"
    assert got.links == (
        "https://approvals.example/e/approve?t=abc&v=1",  # the entity decoded, and the text's copy merged
        "https://approvals.example/e/reject?t=def",
        "https://approvals.example/help",
    )
    assert got.link("reject") == "https://approvals.example/e/reject?t=def"
    with pytest.raises(ValueError, match=re.escape("2 links containing 'approvals.example/e/'")):
        got.link("approvals.example/e/")
    with pytest.raises(ValueError, match="0 links"):
        got.link("nowhere")


def test_an_html_only_mail_has_no_text(sb: SandboxServer, smtp: smtplib.SMTP) -> None:
    smtp.send_message(mail(text=None, html='<a href="https://approvals.example/e/approve?t=1">Approve</a>'))
    got = sb.wait_for_mail(ZOE)
    assert got.text == ""
    assert got.links == ("https://approvals.example/e/approve?t=1",)
    assert got.summary_json()["has_html"] is True
    assert got.summary_json()["has_text"] is False


def test_non_ascii_headers_arrive_decoded(sb: SandboxServer, smtp: smtplib.SMTP) -> None:
    message = mail("Freigabe nötig: Laptop für 1.800 € — Zoë", to=f"Zoë Åberg <{ZOE}>",
                   text="Grüße, Zoë\n")
    smtp.send_message(message)
    got = sb.wait_for_mail(ZOE)
    assert b"=?utf-8?" in got.raw  # sent as RFC 2047 encoded words, read back as text
    assert got.subject == "Freigabe nötig: Laptop für 1.800 € — Zoë"
    assert got.to == (f"Zoë Åberg <{ZOE}>",)
    assert got.text == "Grüße, Zoë\n"


def test_an_internationalised_address_is_accepted_over_smtputf8(
    sb: SandboxServer, smtp: smtplib.SMTP
) -> None:
    smtp.send_message(mail("Prüfung", to="Jürgen <jürgen@beispiel.de>"))  # smtplib asks for SMTPUTF8
    got = sb.wait_for_mail("JÜRGEN@beispiel.de")
    assert got.envelope_to == ("jürgen@beispiel.de",)
    assert got.to == ("Jürgen <jürgen@beispiel.de>",)
    assert got.subject == "Prüfung"


def test_an_unknown_charset_still_shows_its_text(sb: SandboxServer, smtp: smtplib.SMTP) -> None:
    raw = (
        f"From: {FROM}\r\nTo: {ZOE}\r\nSubject: odd\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nhello https://approvals.example/x\r\n"
    )
    smtp.sendmail("approvals@example.com", [ZOE], raw)
    got = sb.wait_for_mail(ZOE)
    assert got.text == "hello https://approvals.example/x\n"
    assert got.links == ("https://approvals.example/x",)


def test_an_oversize_mail_is_refused_with_552(sb: SandboxServer, smtp: smtplib.SMTP) -> None:
    big = mail(text=("y" * 79 + "\n") * (MAX_MAIL_BYTES // 80 + 100))
    wire = big.as_bytes(policy=big.policy.clone(linesep="\r\n"))
    assert len(wire) > MAX_MAIL_BYTES
    # smtplib declares the size (the server offers SIZE), so the server refuses at MAIL FROM...
    with pytest.raises(smtplib.SMTPSenderRefused) as declared:
        smtp.send_message(big)
    assert declared.value.smtp_code == 552
    smtp.rset()
    # ...and a client that does not declare it is refused after DATA.
    smtp.mail("approvals@example.com")
    smtp.rcpt(ZOE)
    code, reply = smtp.data(wire)
    assert code == 552, reply
    smtp.rset()
    assert sb.mails() == []
    smtp.send_message(mail("small"))  # the session goes on
    assert sb.wait_for_mail(ZOE).subject == "small"


def test_every_recipient_sees_it_bcc_too_and_addresses_match_in_any_case(
    sb: SandboxServer, smtp: smtplib.SMTP
) -> None:
    smtp.send_message(mail("to two"), to_addrs=[ZOE, "auditor@example.com"])  # the auditor as Bcc
    assert sb.wait_for_mail("Auditor@Example.com").subject == "to two"
    assert [m.subject for m in sb.mails(ZOE)] == ["to two"]
    assert sb.mails("nobody@example.com") == []


def test_wait_for_mail_waits_for_the_next_one_and_times_out_plainly(
    sb: SandboxServer, smtp: smtplib.SMTP
) -> None:
    smtp.send_message(mail("first"))
    first = sb.wait_for_mail(ZOE)
    smtp.send_message(mail("second"))
    assert sb.wait_for_mail(ZOE, after=first.id).subject == "second"
    assert sb.wait_for_mail(ZOE, subject="first").id == first.id
    with pytest.raises(TimeoutError, match=re.escape("a mail to zoe@example.com about 'third'")):
        sb.wait_for_mail(ZOE, subject="third", timeout=0.2)


def test_any_login_is_accepted(sb: SandboxServer, smtp: smtplib.SMTP) -> None:
    smtp.login("someone", "whatever")  # an app configured for a real server needs no change
    smtp.send_message(mail("after login"))
    assert sb.wait_for_mail(ZOE).subject == "after login"


def test_the_inbox_keeps_only_the_newest(sb: SandboxServer) -> None:
    assert sb.workspace.inbox.limit == MAILS_KEPT
    inbox = Inbox(Changes(), clock=lambda: 0.0, limit=3)
    for n in range(5):
        inbox.receive(mail(f"n{n}").as_bytes(), "a@example.com", [ZOE])
    assert [(m.id, m.subject) for m in inbox.mails()] == [(3, "n2"), (4, "n3"), (5, "n4")]
    assert inbox.get(1) is None
    with pytest.raises(ValueError, match="at least one mail"):
        Inbox(Changes(), clock=lambda: 0.0, limit=0)


# ---- HTTP API ------------------------------------------------------------------------------


def test_the_http_api_lists_shows_and_clears_mails(sb: SandboxServer, smtp: smtplib.SMTP) -> None:
    smtp.send_message(mail("one", html='<a href="https://approvals.example/e/approve?t=1">Approve</a>'))
    smtp.send_message(mail("two"), to_addrs=["other@example.com"])
    sb.wait_for_mail("other@example.com")
    with httpx.Client(base_url=sb.url) as http:
        listing = http.get("/sandbox/mails").json()
        assert listing["ok"] is True
        assert listing["smtp_url"] == sb.smtp_url == f"smtp://127.0.0.1:{sb.mail_port}"
        assert listing["limit"] == MAILS_KEPT
        assert [m["subject"] for m in listing["mails"]] == ["one", "two"]  # in the order they arrived
        assert "text" not in listing["mails"][0] and "html" not in listing["mails"][0]
        assert [m["subject"] for m in http.get("/sandbox/mails", params={"to": "OTHER@example.com"})
                .json()["mails"]] == ["two"]

        first = listing["mails"][0]["id"]
        one = http.get(f"/sandbox/mails/{first}").json()
        assert one["ok"] is True
        assert one["mail"]["links"] == ["https://approvals.example/e/approve?t=1",
                                        "https://approvals.example/e/approve?t=abc"]
        assert one["mail"]["html"].startswith("<a href=")
        assert one["mail"]["envelope_to"] == [ZOE]
        raw = http.get(f"/sandbox/mails/{first}/raw")
        assert raw.headers["content-type"].startswith("text/plain")
        assert raw.headers["x-content-type-options"] == "nosniff"
        assert b"Subject: one" in raw.content

        state = http.get("/ui/state").json()["inbox"]
        assert state["smtp_url"] == sb.smtp_url
        assert [m["subject"] for m in state["mails"]] == ["one", "two"]

        assert http.delete("/sandbox/mails").json() == {"ok": True}
        assert http.get("/sandbox/mails").json()["mails"] == []
        missing = http.get(f"/sandbox/mails/{first}")
        assert missing.status_code == 404
        assert missing.json() == {"ok": False, "error": f"no mail {first} (the Inbox keeps the last 200)"}
        assert http.get(f"/sandbox/mails/{first}/raw").status_code == 404
        assert http.get("/sandbox/mails/abc").status_code == 404


def test_a_sandbox_reset_empties_the_inbox(sb: SandboxServer, smtp: smtplib.SMTP) -> None:
    smtp.send_message(mail())
    sb.wait_for_mail(ZOE)
    assert httpx.post(f"{sb.url}/sandbox/reset").json() == {"ok": True}
    assert sb.mails() == []


# ---- starting and stopping ------------------------------------------------------------------


def test_stopping_hangs_up_on_a_client_mid_session_and_frees_the_port() -> None:
    sandbox = SandboxServer().start()
    port = sandbox.mail_port
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.ehlo()
    client.mail("approvals@example.com")  # a session left open
    sandbox.stop()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.rcpt(ZOE)
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.smtp_url


def test_a_catcher_on_any_free_port_starts_again_after_a_stop() -> None:
    inbox = Inbox(Changes(), clock=lambda: 0.0)
    catcher = MailCatcher(inbox)
    for subject in ("first run", "second run"):
        catcher.start()
        assert catcher.running
        with smtplib.SMTP("127.0.0.1", catcher.port, timeout=10) as client:
            client.send_message(mail(subject))
        catcher.stop()
        assert not catcher.running
    assert [m.subject for m in inbox.mails()] == ["first run", "second run"]


def test_a_sandbox_can_run_without_the_catcher() -> None:
    with SandboxServer(mail_port=None) as sandbox:
        with pytest.raises(RuntimeError, match="not running"):
            _ = sandbox.smtp_url
        assert httpx.get(f"{sandbox.url}/sandbox/mails").json()["smtp_url"] is None


def test_a_taken_port_is_named_in_the_error(sb: SandboxServer) -> None:
    catcher = MailCatcher(Inbox(Changes(), clock=lambda: 0.0), port=sb.mail_port)
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{sb.mail_port}"):
        catcher.start()
    with pytest.raises(ValueError, match="between 0 and 65535"):
        MailCatcher(Inbox(Changes(), clock=lambda: 0.0), port=70000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_once_up(url: str) -> httpx.Response:
    """The command prints its addresses before its HTTP server has bound: retry refused connects."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return httpx.get(url, timeout=10)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def read_until(stream: IO[str], prefix: str) -> str:
    for line in stream:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"the sandbox never printed a line starting {prefix!r}")


def test_the_command_prints_the_mail_port_receives_and_stops_on_ctrl_c() -> None:
    web_port, mail_port = free_port(), free_port()
    env = {**os.environ, "SANDBOX_MAIL_PORT": str(mail_port)}
    with subprocess.Popen(
        [sys.executable, "-m", "slack_approvals.sandbox", "--port", str(web_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:
        assert proc.stdout is not None
        try:
            line = read_until(proc.stdout, "Mail catcher on ")
            assert line.split()[3] == f"smtp://127.0.0.1:{mail_port}"
            with smtplib.SMTP("127.0.0.1", mail_port, timeout=10) as client:
                client.send_message(mail("from the command line"))
            listing = get_once_up(f"http://127.0.0.1:{web_port}/sandbox/mails").json()
            assert [m["subject"] for m in listing["mails"]] == ["from the command line"]
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "Traceback" not in err


def test_the_command_refuses_a_taken_mail_port_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "slack_approvals.sandbox", "--port", str(free_port()),
             "--mail-port", str(port)],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--mail-port" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_command_falls_back_to_a_free_port_when_1025_is_taken() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_MAIL_PORT"}
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", DEFAULT_MAIL_PORT))
            holder.listen()
        except OSError:
            pass  # someone else holds it: taken all the same
        with subprocess.Popen(
            [sys.executable, "-m", "slack_approvals.sandbox", "--port", str(free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        ) as proc:
            assert proc.stdout is not None
            try:
                url = read_until(proc.stdout, "Mail catcher on ").split()[3]
                port = int(url.rsplit(":", 1)[1])
                assert port != DEFAULT_MAIL_PORT
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.send_message(mail("on the fallback port"))
            finally:
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=15)
            assert proc.returncode == 0, err
