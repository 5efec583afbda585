"""deployctl in a real terminal (tmux): it follows by default there, with the live table of
resources while the job runs, then the result."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.automation.cli_process import DEPLOYCTL, cli_environment
from tests.automation.conftest import StartService

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def tmux() -> Iterator[list[str]]:
    """The tmux command on a server of this test's own (its own socket), ended after it."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: scripts/setup installs it")
    command = ["tmux", "-L", f"deployctl-test-{uuid.uuid4().hex[:8]}"]
    yield command
    subprocess.run([*command, "kill-server"], capture_output=True, check=False)


def pane(tmux: list[str]) -> str:
    return subprocess.run(
        [*tmux, "capture-pane", "-p", "-t", "cli"], capture_output=True, text=True, check=True
    ).stdout


def wait_for_pane(tmux: list[str], wanted: str, timeout: float = 40) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = pane(tmux)
        if wanted in shown:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"{wanted!r} never shown; the pane:\n{shown}")


def test_the_terminal_shows_live_progress_then_the_result(
    start_service: StartService, tmux: list[str]
) -> None:
    service = start_service()
    env = cli_environment(service.base_url) | {"TERM": "xterm-256color"}
    del env["NO_COLOR"], env["COLUMNS"]
    script = f"{shlex.quote(str(DEPLOYCTL))} up dev -c delay_seconds=3; echo EXIT=$?; sleep 60"
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "cli", "-x", "150", "-y", "40", script],
        env=env,
        check=True,
    )

    during = wait_for_pane(tmux, "greeter-marker")
    assert "up dev: running" in during, during
    assert all(column in during for column in ("Type", "Name", "Status", "Elapsed")), during
    assert re.search(r"greeter-marker +creating +\d+s", during), during
    assert "Resources:" not in during, during

    after = wait_for_pane(tmux, "EXIT=")
    assert "EXIT=0" in after, after
    assert "up dev: succeeded" in after, after
    for shown in ("Resources: 4 created", 'greeting: "hello from dev"', "Job "):
        assert shown in after, after
    assert after.count("greeter-marker") == 1, (
        f"the live table was printed more than once:\n{after}"
    )
