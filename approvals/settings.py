"""Every setting, read from the environment and `.env` in this one place.

Everything below the composition root receives clients and settings as arguments.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from slack_approvals.bot.mailer import SmtpTarget, check_sender
from slack_approvals.core.errors import ApprovalsError
from slack_approvals.state.connection import parse_redis_url
from slack_approvals.state.errors import RedisSetupError
from slack_approvals.state.models import CHANNEL_PATTERN, USER_ID_PATTERN

SLACK_API_DEFAULT = "https://slack.com/api/"
DEFAULT_POLICY_FILE = "approvals-policy.yaml"


class SettingsError(ApprovalsError):
    """A setting is missing or malformed; the message is one line naming it."""


LogFormat = Literal["text", "json"]


class LogSettings(BaseSettings):
    """What every command reads before anything else (its log lines start at once); the rest
    is read by the commands that need it, so a bad REDIS_URL does not break `policy check`."""

    # An empty line copied from .env.example means "unset", not "invalid".
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=False, env_ignore_empty=True)

    # text: one line per record for people; json: one JSON object per line for log shippers.
    approvals_log_format: LogFormat = "text"

    @field_validator("approvals_log_format", mode="before")
    @classmethod
    def _log_format(cls, v: object) -> object:
        if isinstance(v, str) and v.strip().lower() in ("text", "json"):
            return v.strip().lower()
        return v  # refused as typed, so the message shows what was set


class Settings(LogSettings):
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = SLACK_API_DEFAULT
    redis_url: str | None = None
    approvals_channel: str = "#approvals"
    approvals_default_approvers: Annotated[list[str], NoDecode] = []
    approvals_requester: str | None = None
    approvals_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    approvals_data_dir: Path = Path(".data")
    approvals_wait_slice_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    approvals_redis_outage_seconds: Annotated[float, Field(ge=0, le=86400)] = 600.0
    # A gate in a deployment run waits this long in its process, then suspends the run.
    approvals_hold_seconds: Annotated[float, Field(ge=0, le=86400)] = 120.0
    approvals_sweep_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # Prometheus metrics of `approvals bot` on a port of their own (unset: none are served).
    approvals_metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    # Metrics stay on this machine unless opened on purpose (APPROVALS_METRICS_HOST=0.0.0.0).
    approvals_metrics_host: str = "127.0.0.1"
    prefect_ui_url: str | None = None
    # The approval policy file; unset: approvals-policy.yaml in the working directory when it
    # exists, else the built-in policy (see policy/builtin.py).
    approvals_policy: Path | None = None
    # Approvers outside Slack: the address the bot's web approval page is reached at (links in
    # mails point there), its port in Socket Mode, and the SMTP server the bot sends mail by.
    approvals_public_url: str | None = None
    approvals_web_port: Annotated[int, Field(ge=1, le=65535)] = 3000
    approvals_smtp_url: SecretStr | None = None
    approvals_mail_from: str | None = None
    # The proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the
    # client: the approval page's wrong-link limit counts per client. Others' headers are ignored.
    approvals_trusted_proxies: str = "127.0.0.1"

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return v

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and v.get_secret_value() and not v.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return v or None

    @field_validator("slack_signing_secret")
    @classmethod
    def _signing_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{16,64}", v.get_secret_value()):
            raise ValueError("must be the app's signing secret (hex, from Basic Information)")
        return v

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return v if v.endswith("/") else v + "/"

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if not v:
            return None
        try:
            parse_redis_url(v)
        except RedisSetupError as e:
            raise ValueError(str(e)) from e
        return v

    @field_validator("approvals_channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        if not re.match(CHANNEL_PATTERN, v):
            raise ValueError("must be a channel id (C0123ABC) or name (#approvals)")
        return v

    @field_validator("approvals_default_approvers", mode="before")
    @classmethod
    def _approvers(cls, v: object) -> object:
        if isinstance(v, str):
            v = [part.strip() for part in v.split(",") if part.strip()]
        if isinstance(v, list):
            for user in v:
                if not isinstance(user, str) or not re.match(USER_ID_PATTERN, user):
                    raise ValueError(f"{user!r} is not a Slack user id (like U012AB3CD)")
        return v

    @field_validator("approvals_requester")
    @classmethod
    def _requester(cls, v: str | None) -> str | None:
        if v and not re.match(USER_ID_PATTERN, v):
            raise ValueError(f"{v!r} is not a Slack user id (like U012AB3CD)")
        return v or None

    @field_validator("approvals_metrics_host")
    @classmethod
    def _metrics_host(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9A-Za-z.:-]{1,253}", v):
            raise ValueError("must be an interface address or host name such as 127.0.0.1")
        return v

    @field_validator("approvals_policy")
    @classmethod
    def _policy(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"{str(v)!r}: no such policy file")
        return v

    @field_validator("approvals_public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v and not re.match(r"^https?://[^/\s?#]+/?$", v):
            # The page's form and cookie live at /approval/... from the root: a path prefix
            # would give links that a proxy forwards but the page cannot answer.
            raise ValueError("must be the http(s) address the bot is reached at, with no path, "
                             "e.g. https://approvals.example.com (serve it from its own host)")
        return v.rstrip("/") if v else None

    @field_validator("approvals_trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, v: str) -> str:
        entries = [e.strip() for e in v.split(",") if e.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (like 10.0.0.0/8); "
                                 "'*' is not allowed: anyone could then name any client") from None
        return ",".join(entries)

    @field_validator("approvals_smtp_url")
    @classmethod
    def _smtp_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and v.get_secret_value():
            SmtpTarget.from_url(v.get_secret_value())  # its ValueError never holds the password
        return v if v is not None and v.get_secret_value() else None

    @field_validator("approvals_mail_from")
    @classmethod
    def _mail_from(cls, v: str | None) -> str | None:
        return check_sender(v) if v else None

    def mail_settings(self) -> tuple[SmtpTarget, str, str] | None:
        """SMTP target, sender and public URL; None without APPROVALS_SMTP_URL (email approvers
        then get no mail); SettingsError when the SMTP URL is set without the other two."""
        if self.approvals_smtp_url is None:
            return None
        if self.approvals_mail_from is None:
            raise SettingsError("setting APPROVALS_MAIL_FROM is missing: the sender of the mails "
                                "to email approvers (approvals@example.com)")
        if self.approvals_public_url is None:
            raise SettingsError("setting APPROVALS_PUBLIC_URL is missing: the address the mails' "
                                "links open (https://approvals.example.com)")
        return (SmtpTarget.from_url(self.approvals_smtp_url.get_secret_value()),
                self.approvals_mail_from, self.approvals_public_url)

    def policy_file(self) -> Path | None:
        """The policy file in force, or None for the built-in policy."""
        if self.approvals_policy is not None:
            return self.approvals_policy
        default = Path(DEFAULT_POLICY_FILE)
        return default if default.is_file() else None

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.approvals_retention_days)

    def bot_token(self) -> str:
        if self.slack_bot_token is None:
            raise SettingsError("setting SLACK_BOT_TOKEN is missing (the bot token, xoxb-...)")
        return self.slack_bot_token.get_secret_value()

    def signing_secret(self) -> str:
        if self.slack_signing_secret is None:
            raise SettingsError("setting SLACK_SIGNING_SECRET is missing (Basic Information page)")
        return self.slack_signing_secret.get_secret_value()


def load_log_format() -> LogFormat:
    """APPROVALS_LOG_FORMAT alone; a bad value raises SettingsError as load_settings does."""
    return _read(LogSettings).approvals_log_format


def load_settings(**overrides: object) -> Settings:
    """Read settings; a bad one raises SettingsError naming the variable in one line."""
    return _read(Settings, **overrides)


_Read = TypeVar("_Read", bound=LogSettings)


def _read(kind: type[_Read], **overrides: object) -> _Read:
    try:
        return kind(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")  # pydantic's, not ours
        if first["type"] != "value_error" and not any(w in name for w in ("TOKEN", "SECRET", "URL")):
            message += f" (got {first['input']!r})"  # never echo a secret or a password
    # Raised outside the except block: pydantic's error holds the input (a token, an SMTP
    # password) in its text, and must not ride along even as the hidden __context__.
    raise SettingsError(f"setting {name}: {message}")
