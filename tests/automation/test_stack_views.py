"""GET /environments/{env} from memory: one CLI read for concurrent cold reads, none per warm
read, a new read after a job of the environment finished or its stack file changed."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from automation.engine import Engine
from automation.pulumi_adapter import StackReader, StackView
from automation.stack_views import StackViews
from tests.automation.conftest import StartService
from tests.conftest import write_stack_file

pytestmark = pytest.mark.timeout(180)

GREETING = "provider-free-fixture:greeting"


def _run(scenario: Coroutine[Any, Any, None]) -> None:
    """On a loop of its own: asyncio.run() would leave the thread without a current loop,
    which the Pulumi mocks of later tests need."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario)
    finally:
        loop.close()


class CountingReader:
    """The real CLI read, counted; `gate` (when set) holds each read until it is released."""

    def __init__(self, engine: Engine, project: Path) -> None:
        self.reader = StackReader(engine, project)
        self.reads = 0
        self.gate: threading.Event | None = None

    def read(self, stack: str) -> StackView:
        self.reads += 1
        if self.gate is not None:
            assert self.gate.wait(30)
        return self.reader.read(stack)


def test_concurrent_cold_reads_share_one_cli_read_and_warm_reads_run_none(
    engine: Engine, provider_free_project: Path
) -> None:
    counting = CountingReader(engine, provider_free_project)
    views = StackViews(counting.read, provider_free_project)

    async def scenario() -> None:
        cold = await asyncio.gather(*(views.view("dev") for _ in range(20)))
        assert counting.reads == 1
        assert all(view == cold[0] for view in cold)
        assert cold[0].exists is False and cold[0].config[GREETING] == "hello from dev"
        for _ in range(50):
            assert await views.view("dev") == cold[0]
        assert counting.reads == 1

        write_stack_file(provider_free_project, "dev", "edited by hand")
        edited = await views.view("dev")
        assert edited.config[GREETING] == "edited by hand"
        assert counting.reads == 2
        await views.view("dev")
        assert counting.reads == 2

        views.invalidate("dev")  # a job of dev finished
        await views.view("dev")
        assert counting.reads == 3

    _run(scenario())


def test_a_read_under_way_when_a_job_finishes_is_not_kept(
    engine: Engine, provider_free_project: Path
) -> None:
    counting = CountingReader(engine, provider_free_project)
    views = StackViews(counting.read, provider_free_project)

    async def scenario() -> None:
        counting.gate = threading.Event()
        reading = asyncio.create_task(views.view("dev"))
        while counting.reads == 0:
            await asyncio.sleep(0.01)
        views.invalidate("dev")
        counting.gate.set()
        await reading
        await views.view("dev")
        assert counting.reads == 2

    _run(scenario())


def _detail(http: httpx.Client) -> dict[str, object]:
    response = http.get("/environments/dev")
    assert response.status_code == 200, response.text
    detail: dict[str, object] = response.json()
    return detail


def test_environment_reads_are_fast_and_follow_jobs_and_hand_edits(
    start_service: StartService, provider_free_project: Path
) -> None:
    service = start_service()
    cold = _detail(service.http)
    assert cold["stack_exists"] is False and cold["outputs"] == {}

    # An up without config does not touch the stack file: only the finished job says so.
    up = service.wait(service.post("/environments/dev/up")["id"])
    assert up["status"] == "succeeded", up
    after_up = _detail(service.http)
    assert after_up["stack_exists"] is True
    assert after_up["outputs"] == up["outputs"] and up["outputs"]["greeting"] == "hello from dev"

    timings = []
    for _ in range(60):
        started = time.perf_counter()
        assert _detail(service.http) == after_up
        timings.append(time.perf_counter() - started)
    p50 = statistics.median(timings)

    clients = [httpx.Client(base_url=service.base_url, timeout=30) for _ in range(20)]
    start = threading.Barrier(20)

    def timed_read(client: httpx.Client) -> float:
        start.wait()
        started = time.perf_counter()
        assert client.get("/environments/dev").status_code == 200
        return time.perf_counter() - started

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(timed_read, clients))  # connections open, threads started
        started = time.perf_counter()
        slowest = max(pool.map(timed_read, clients))
        concurrent = time.perf_counter() - started
    for client in clients:
        client.close()
    print(
        f"\nGET /environments/dev: p50 {p50 * 1000:.1f} ms,"
        f" 20 concurrent {concurrent * 1000:.0f} ms (slowest {slowest * 1000:.0f} ms)"
    )
    # One CLI read takes 0.4-1 s here: a read per request would fail both bounds.
    assert p50 < 0.020
    assert concurrent < 0.5

    configured = service.post(
        "/environments/dev/up", {"config": {"greeting": "example/app:from-a-job"}}
    )
    assert service.wait(configured["id"])["status"] == "succeeded"
    detail = _detail(service.http)
    assert detail["config"][GREETING] == "example/app:from-a-job"  # type: ignore[index]
    assert detail["outputs"]["greeting"] == "example/app:from-a-job"  # type: ignore[index]

    write_stack_file(provider_free_project, "dev", "edited by hand")
    detail = _detail(service.http)
    assert detail["config"][GREETING] == "edited by hand"  # type: ignore[index]
    assert detail["outputs"]["greeting"] == "example/app:from-a-job"  # type: ignore[index]
