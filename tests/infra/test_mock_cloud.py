"""The offline evaluation itself: each run starts from nothing and leaves nothing behind, in
its caller's Pulumi state or in an event loop the caller is running (as a browser test does)."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pulumi
import pytest

from infra.mock_cloud import evaluate
from infra.settings import ConfigError
from tests.infra.stack_template import Synth, stack_config_text

T = TypeVar("T")


def assert_no_pulumi_state_here() -> None:
    assert pulumi.runtime.get_root_resource() is None
    assert pulumi.runtime.settings.SETTINGS.monitor is None
    assert pulumi.runtime.config.CONFIG.get() == {}


def test_an_evaluation_leaves_no_pulumi_state_in_its_caller(synth: Synth) -> None:
    assert synth("dev").resources("aws:ecs/service:Service")
    assert_no_pulumi_state_here()


def test_a_failing_program_leaves_none_either() -> None:
    with pytest.raises(ConfigError, match="services"):
        evaluate("dev", stack_config_text("dev", {"services": "not a list"}))
    assert_no_pulumi_state_here()


def in_a_running_loop(call: Callable[[], T]) -> T:
    """`call()` made from inside a running event loop whose default executor is a known pool,
    which must still be the loop's afterwards. On a thread of its own: this one may be running
    a loop already (the dashboard tests' Playwright leaves one running for the session)."""

    async def caller() -> T:
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor()
        loop.set_default_executor(pool)
        result = call()
        assert getattr(loop, "_default_executor", None) is pool
        return result

    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, caller()).result()


def test_an_evaluation_inside_a_running_loop_leaves_the_loop_as_it_was(synth: Synth) -> None:
    template = in_a_running_loop(lambda: synth("dev"))
    assert template.resources("aws:ecs/service:Service")
