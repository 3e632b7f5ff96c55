"""The systemd units and environment files in deploy/systemd/ that docs/production.md installs:
they parse, every command they start exists with the options they pass, and every variable
they set is a real setting of ours or of Prefect."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import Settings as PrefectSettings
from prefect.settings.legacy import _get_settings_fields

from slack_approvals.approvals.settings import Settings

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED_VENV = "/opt/slack-approvals/.venv"
VENV = Path(sys.executable).parent.parent


def units() -> list[Path]:
    return sorted(UNITS.glob("*.service"))


def directives(unit: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.read_text().splitlines()
            if line.startswith(f"{key}=")]


def test_the_units_are_there() -> None:
    assert {u.name for u in units()} == {"prefect-server.service", "approvals-worker@.service",
                                         "approvals-bot@.service", "approvals-serve.service"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    """Installed as the guide says, with this checkout's virtualenv in place of /opt's."""
    for unit in units():
        name = unit.name.replace("@.", "@3000.")  # a template needs an instance to verify
        (tmp_path / name).write_text(unit.read_text().replace(INSTALLED_VENV, str(VENV)))
    result = subprocess.run(["systemd-analyze", "verify",
                             *sorted(str(p) for p in tmp_path.glob("*.service"))],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("unit", units(), ids=lambda u: u.name)
def test_exec_start_names_a_real_command_with_real_options(unit: Path) -> None:
    (command,) = directives(unit, "ExecStart")
    words = shlex.split(command)
    assert words[0].startswith(f"{INSTALLED_VENV}/bin/")
    program = Path(words[0]).name
    first_option = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
    subcommand = words[1:first_option]
    options = [w for w in words[1:] if w.startswith("--")]
    runner = ([sys.executable, "-m", "slack_approvals"] if program == "approvals"
              else [str(VENV / "bin" / program)])
    result = subprocess.run([*runner, *subcommand, "--help"], capture_output=True, text=True,
                            timeout=120, env={"COLUMNS": "200", "PATH": str(VENV / "bin")})
    assert result.returncode == 0, result.stdout + result.stderr
    for option in options:
        assert option in result.stdout, f"{program} {' '.join(subcommand)} has no {option}"


def setting_names() -> set[str]:
    ours = {name.upper() for name in Settings.model_fields}
    return ours | set(_get_settings_fields(PrefectSettings))


def test_every_variable_is_a_real_setting() -> None:
    known = setting_names()
    named: dict[str, str] = {}
    for unit in units():
        for value in directives(unit, "Environment"):
            named[value.split("=", 1)[0]] = unit.name
    for env_file in UNITS.glob("*.env"):
        for line in env_file.read_text().splitlines():
            found = re.match(r"^#? ?([A-Z][A-Z0-9_]+)=", line)  # set or shown commented out
            if found:
                named[found.group(1)] = env_file.name
    unknown = {name: where for name, where in named.items() if name not in known}
    assert not unknown
    assert {"SLACK_BOT_TOKEN", "REDIS_URL", "PREFECT_API_URL",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL"} <= set(named)


def test_every_environment_file_named_is_shipped() -> None:
    for unit in units():
        for path in directives(unit, "EnvironmentFile"):
            assert (UNITS / Path(path.lstrip("-")).name).is_file(), (unit.name, path)


def test_the_flows_need_no_signing_secret_and_the_bot_no_hold_window() -> None:
    """Each process gets what it uses: a secret in a file that does not need it is one more
    place it can leak from."""
    flows = (UNITS / "flows.env").read_text()
    bot = (UNITS / "bot.env").read_text()
    assert "SLACK_SIGNING_SECRET" not in flows and "SLACK_APP_TOKEN" not in flows
    assert "SLACK_SIGNING_SECRET=" in bot and "APPROVALS_HOLD_SECONDS" not in bot
