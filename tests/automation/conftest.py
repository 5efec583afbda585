"""Fixtures for the automation service's tests: real processes on copies of the fixture."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.automation.running_service import Service, service_environment

StartService = Callable[..., Service]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def start_service(
    provider_free_project: Path, state_dir: Path, tmp_path: Path
) -> Iterator[StartService]:
    """Start `python -m automation` on the project copy (environment `dev` only, unless the
    test says otherwise: fewer spare workers competing for two cores); every service is
    stopped at the end of the test."""
    started: list[Service] = []

    def start(
        token: str | None = None, env: dict[str, str] | None = None, **settings: str
    ) -> Service:
        settings.setdefault("environments", "dev")
        environment = env or service_environment(provider_free_project, state_dir, **settings)
        service = Service(environment, tmp_path / "service.log", token=token)
        started.append(service)
        return service

    yield start
    for service in started:
        workers = service.worker_pids()
        service.stop()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
