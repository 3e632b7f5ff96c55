"""Settings: one clear line naming a bad setting; empty lines from .env.example mean unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from slack_approvals.approvals.settings import SettingsError, load_settings
from slack_approvals.state.connection import redacted


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL",
                 "REDIS_URL", "APPROVALS_CHANNEL", "APPROVALS_DEFAULT_APPROVERS",
                 "APPROVALS_REQUESTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_example_file_copied_as_is_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())
    settings = load_settings()
    assert settings.slack_bot_token is None
    assert settings.redis_url is None
    assert settings.approvals_channel == "#approvals"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SLACK_BOT_TOKEN", "xoxp-user-token", "SLACK_BOT_TOKEN"),
    ("SLACK_SIGNING_SECRET", "not hex!", "SLACK_SIGNING_SECRET"),
    ("SLACK_APP_TOKEN", "xoxb-wrong-kind", "SLACK_APP_TOKEN"),
    ("SLACK_API_URL", "slack.com/api", "SLACK_API_URL"),
    ("REDIS_URL", "http://localhost:6379", "REDIS_URL"),
    ("APPROVALS_CHANNEL", "Approvals Channel", "APPROVALS_CHANNEL"),
    ("APPROVALS_DEFAULT_APPROVERS", "U01MAYA,maya", "APPROVALS_DEFAULT_APPROVERS"),
    ("APPROVALS_RETENTION_DAYS", "0", "APPROVALS_RETENTION_DAYS"),
    ("APPROVALS_WAIT_SLICE_SECONDS", "abc", "APPROVALS_WAIT_SLICE_SECONDS"),
    ("APPROVALS_HOLD_SECONDS", "-1", "APPROVALS_HOLD_SECONDS"),
    ("APPROVALS_HOLD_SECONDS", "two minutes", "APPROVALS_HOLD_SECONDS"),
])
def test_a_bad_setting_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch, name: str,
                                            value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_redis_passwords_never_reach_error_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://:s3cretpw@h1:26379")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "s3cretpw" not in str(caught.value)
    assert redacted("rediss://user:pw@host:6380/0") == "rediss://user:***@host:6380/0"
