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


def unit_named(name: str) -> Path:
    return UNITS / name


def test_each_role_runs_as_its_own_user_with_only_its_own_secrets() -> None:
    """Flow code runs as approvals-flows; it cannot read the bot's signing secret or SMTP
    credentials, nor the Prefect server's database password."""
    users = {unit.name: directives(unit, "User") for unit in units()}
    assert users == {"prefect-server.service": ["prefect"],
                     "approvals-bot@.service": ["approvals-bot"],
                     "approvals-worker@.service": ["approvals-flows"],
                     "approvals-serve.service": ["approvals-flows"]}
    files = {unit.name: [Path(p).name for p in directives(unit, "EnvironmentFile")]
             for unit in units()}
    assert files == {"prefect-server.service": ["prefect-server.env"],
                     "approvals-bot@.service": ["bot.env"],
                     "approvals-worker@.service": ["flows.env"],
                     "approvals-serve.service": ["flows.env"]}
    # A role's data folder is its own (StateDirectory= hands it to the unit's user).
    assert len({tuple(directives(unit, "StateDirectory")) for unit in units()
                if unit.name != "approvals-serve.service"}) == 3


def test_the_prefect_api_asks_every_client_for_the_auth_string() -> None:
    server = (UNITS / "prefect-server.env").read_text()
    assert re.search(r"^PREFECT_SERVER_API_AUTH_STRING=", server, re.MULTILINE)
    for client in ("bot.env", "flows.env"):
        assert re.search(r"^PREFECT_API_AUTH_STRING=", (UNITS / client).read_text(), re.MULTILINE)


def test_bot_replicas_on_one_machine_never_share_the_page_port() -> None:
    bot = unit_named("approvals-bot@.service")
    assert "APPROVALS_WEB_PORT=%i" in directives(bot, "Environment")
    assert not re.search(r"^APPROVALS_WEB_PORT=", (UNITS / "bot.env").read_text(), re.MULTILINE)


def test_the_stop_timeout_covers_a_hand_back() -> None:
    """systemd SIGKILLs a unit still stopping at TimeoutStopSec: the runs not yet handed back
    would stay Running for good."""
    from slack_approvals.approvals.handing_back import HAND_BACK_TIMEOUT_SECONDS, STOP_GRACE_SECONDS
    from slack_approvals.approvals.working import WORKER_EXIT_SECONDS

    # Runs stopping, the worker exiting, then one read and one write per run (all runs at once).
    longest = STOP_GRACE_SECONDS + WORKER_EXIT_SECONDS + 2 * HAND_BACK_TIMEOUT_SECONDS
    for name in ("approvals-worker@.service", "approvals-serve.service"):
        (timeout,) = directives(unit_named(name), "TimeoutStopSec")
        assert float(timeout) >= longest + 30, name  # room for the rescans and the log lines


def test_the_shipped_policy_is_valid_and_installed_where_the_units_read_it() -> None:
    policy = UNITS.parent / "approvals-policy.yaml"
    result = subprocess.run([sys.executable, "-m", "slack_approvals", "policy", "check",
                             str(policy)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    named = {line.split("=", 1)[1] for name in ("bot.env", "flows.env")
             for line in (UNITS / name).read_text().splitlines()
             if line.startswith("APPROVALS_POLICY=")}
    assert named == {"/etc/slack-approvals/approvals-policy.yaml"}
    guide = (UNITS.parents[1] / "docs" / "production.md").read_text()
    assert ("deploy/approvals-policy.yaml /etc/slack-approvals/approvals-policy.yaml" in guide)
    assert "approvals policy check /etc/slack-approvals/approvals-policy.yaml" in guide
