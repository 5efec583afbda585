"""Bad settings stop the app before it listens, with a message naming the variable."""

import socket
import subprocess
import sys

import pytest

from app.settings import Settings, SettingsError, load_settings
from tests.app.running_app import REPO_ROOT, app_environment, free_port


def test_defaults() -> None:
    assert load_settings({}) == Settings(
        port=8000, health_message="Everything is good here 03", version="dev"
    )


def test_values_from_the_environment() -> None:
    environ = {"PORT": "8080", "APP_HEALTH_MESSAGE": "blue v3", "APP_VERSION": "3.0.1"}
    assert load_settings(environ) == Settings(port=8080, health_message="blue v3", version="3.0.1")


BAD_PORTS = ["abc", "", "0", "65536", "-1", "80.0", " 8000", "\uff18\uff10"]  # last: int() takes it


@pytest.mark.parametrize("port", BAD_PORTS)
def test_bad_port_is_named(port: str) -> None:
    with pytest.raises(SettingsError, match=r"PORT must be a whole number from 1 to 65535"):
        load_settings({"PORT": port})


@pytest.mark.parametrize("name", ["APP_HEALTH_MESSAGE", "APP_VERSION"])
def test_blank_text_is_named(name: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name} is set but blank"):
        load_settings({name: "  "})


def run_app(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=REPO_ROOT,
        env=app_environment(**env),
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_bad_port_exits_2_before_listening() -> None:
    result = run_app(PORT="eighty")
    assert result.returncode == 2
    assert result.stderr == "app: PORT must be a whole number from 1 to 65535, got 'eighty'\n"
    assert result.stdout == ""


def test_port_in_use_exits_1_naming_it() -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", port))
        holder.listen()
        result = run_app(PORT=str(port))
    assert result.returncode == 1
    assert result.stderr.startswith(f"app: cannot listen on 0.0.0.0:{port}: ")
    assert "Address already in use" in result.stderr
