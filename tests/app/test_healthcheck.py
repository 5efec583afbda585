"""`python -m app.healthcheck URL`, the command the image and the ECS task run."""

import shlex
import subprocess
import sys

import pytest

from app import contract
from app.healthcheck import main
from tests.app.running_app import REPO_ROOT, RunningApp, free_port


def contract_command_for(url: str) -> list[str]:
    """HEALTH_CHECK_COMMAND with its URL swapped for `url` and `python` for this venv's."""
    program, *arguments, contract_url = shlex.split(contract.HEALTH_CHECK_COMMAND)
    assert (program, contract_url) == ("python", contract.HEALTH_URL)
    return [sys.executable, *arguments, url]


def test_exits_0_against_the_running_app(shared_app: RunningApp) -> None:
    command = contract_command_for(shared_app.url(contract.HEALTH_PATH))
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    assert (result.returncode, result.stderr) == (0, "")


def test_exits_1_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    assert main([url]) == 1
    assert capsys.readouterr().err.startswith(f"unhealthy: {url}: ")


def test_exits_1_on_a_status_other_than_200(
    shared_app: RunningApp, capsys: pytest.CaptureFixture[str]
) -> None:
    url = shared_app.url("/missing")
    assert main([url]) == 1
    assert capsys.readouterr().err == f"unhealthy: {url}: HTTP 404\n"


@pytest.mark.parametrize("argv", [[], ["http://a/", "http://b/"]])
def test_wrong_arguments_exit_1_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("usage: python -m app.healthcheck ")


def test_only_http_urls_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["file:///etc/passwd"]) == 1
    assert "not an http(s) URL: 'file:///etc/passwd'" in capsys.readouterr().err
