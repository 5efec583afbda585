"""Fixtures that start the app as a real process."""

from collections.abc import Callable, Iterator

import pytest

from tests.app.running_app import RunningApp


@pytest.fixture
def start_app() -> Iterator[Callable[..., RunningApp]]:
    """Start apps with the given environment; each is killed at the end if still running."""
    started: list[RunningApp] = []

    def start(**env: str) -> RunningApp:
        running = RunningApp(**env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


@pytest.fixture(scope="module")
def shared_app() -> Iterator[RunningApp]:
    """One app for the tests that only send requests and read answers."""
    running = RunningApp()
    yield running
    running.close()
