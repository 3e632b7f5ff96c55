"""SMTP as the settings name it, against a real aiosmtpd server with TLS on loopback:
STARTTLS when offered (and before the password is sent), implicit TLS for smtps://, a login
refused or a certificate not trusted is a failure a later try may get past."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slack_approvals.bot.mailer import MailFailed, SmtpTarget, SmtpTransport
from tests.conftest import free_port

USER, PASSWORD = "approvals", "s3cret:pass@word"


@dataclass
class Recorder:
    tls: list[bool] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        transport = server.transport
        self.tls.append(transport is not None and transport.get_extra_info("ssl_object") is not None)
        return "250 OK"

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        # handled=False: aiosmtpd answers a refusal with its own 535.
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made for this run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "approvals@example.com", "ann@example.com", "Hi"
    mail.set_content("hello")
    return mail


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port,
                            tls_context=server_context(certificate), require_starttls=True,
                            authenticator=recorder, auth_required=True)
    controller.start()
    yield recorder, port
    controller.stop()


def test_starttls_comes_before_the_password(starttls_server: tuple[Recorder, int],
                                            certificate: tuple[Path, Path]) -> None:
    recorder, port = starttls_server
    target = SmtpTarget.from_url(f"smtp://{USER}:s3cret%3Apass%40word@127.0.0.1:{port}")
    SmtpTransport(target, tls_context=lambda: trusting(certificate)).send(message())
    # The server accepts AUTH only over TLS, so the login itself shows STARTTLS came first.
    assert recorder.logins == [(USER, PASSWORD)] and recorder.tls == [True]


def test_a_refused_login_and_an_untrusted_certificate_are_not_final(
        starttls_server: tuple[Recorder, int], certificate: tuple[Path, Path]) -> None:
    _, port = starttls_server
    wrong = SmtpTarget("127.0.0.1", port, False, USER, "guess")
    with pytest.raises(MailFailed, match="SMTP login refused") as refused:
        SmtpTransport(wrong, tls_context=lambda: trusting(certificate)).send(message())
    # The settings are wrong, not the recipient: a server problem, never final.
    assert refused.value.final is False and refused.value.server is True
    right = SmtpTarget("127.0.0.1", port, False, USER, PASSWORD)
    with pytest.raises(MailFailed, match="unreachable") as untrusted:
        SmtpTransport(right).send(message())  # the system's CAs do not know this certificate
    assert untrusted.value.final is False
    assert PASSWORD not in str(untrusted.value)


def test_smtps_is_tls_from_the_first_byte(certificate: tuple[Path, Path]) -> None:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port,
                            ssl_context=server_context(certificate), authenticator=recorder,
                            # aiosmtpd counts only STARTTLS as TLS for its AUTH rule.
                            auth_require_tls=False, server_hostname="127.0.0.1")
    controller.start()
    try:
        target = SmtpTarget.from_url(f"smtps://{USER}:s3cret%3Apass%40word@127.0.0.1:{port}")
        assert target.implicit_tls
        SmtpTransport(target, tls_context=lambda: trusting(certificate)).send(message())
    finally:
        controller.stop()
    assert recorder.logins == [(USER, PASSWORD)] and recorder.tls == [True]


def test_nothing_listening_is_not_final() -> None:
    with pytest.raises(MailFailed) as failed:
        SmtpTransport(SmtpTarget("127.0.0.1", free_port(), False), timeout=5).send(message())
    assert failed.value.final is False


@dataclass
class PlainServer(Recorder):
    """A server offering no STARTTLS, which may refuse the sender (a wrong MAIL FROM)."""

    sender_refusal: str | None = None
    mails: list[str] = field(default_factory=list)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if self.sender_refusal is not None:
            return self.sender_refusal
        self.mails.append(address)
        envelope.mail_from = address
        return "250 OK"


@pytest.fixture
def plain_server() -> Iterator[tuple[PlainServer, int]]:
    recorder = PlainServer()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, authenticator=recorder,
                            auth_require_tls=False)
    controller.start()
    yield recorder, port
    controller.stop()


def test_without_starttls_nothing_crosses_the_network_in_clear(
        plain_server: tuple[PlainServer, int]) -> None:
    recorder, port = plain_server
    # As a remote host's smtp:// is read: TLS required (127.0.0.1 stands in for that host).
    remote = SmtpTarget("127.0.0.1", port, False, USER, PASSWORD, plaintext=False)
    assert SmtpTarget.from_url(f"smtp://{USER}:x@mail.example.com").plaintext_allowed is False
    with pytest.raises(MailFailed, match="offers no STARTTLS") as failed:
        SmtpTransport(remote).send(message())
    assert failed.value.server is True and failed.value.final is False
    assert recorder.logins == [] and recorder.mails == [] and recorder.tls == []
    # A relay on this machine, or one the URL says is trusted, may be spoken to in clear.
    for url in (f"smtp://{USER}:s3cret%3Apass%40word@127.0.0.1:{port}",
                f"smtp://{USER}:s3cret%3Apass%40word@127.0.0.1:{port}?tls=none"):
        SmtpTransport(SmtpTarget.from_url(url)).send(message())
    assert recorder.logins == [(USER, PASSWORD)] * 2 and recorder.tls == [False, False]
    assert SmtpTarget.from_url("smtp://mail.example.com?tls=none").plaintext_allowed is True
    for bad in ("smtp://mail.example.com?tls=off", "smtps://mail.example.com?tls=none",
                "smtp://mail.example.com?x=1"):
        with pytest.raises(ValueError, match="tls=none"):
            SmtpTarget.from_url(bad)


def test_a_refused_sender_is_the_servers_problem_not_the_recipients(
        plain_server: tuple[PlainServer, int]) -> None:
    recorder, port = plain_server
    recorder.sender_refusal = "553 5.7.1 sender not allowed"
    with pytest.raises(MailFailed, match="sender refused") as failed:
        SmtpTransport(SmtpTarget("127.0.0.1", port, False)).send(message())
    assert failed.value.server is True and failed.value.final is False
