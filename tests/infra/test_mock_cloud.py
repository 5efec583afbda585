"""The offline evaluation itself: each run starts from nothing and leaves nothing behind."""

import asyncio
import threading

import pulumi
import pytest

from infra.mock_cloud import evaluate
from infra.settings import ConfigError
from tests.infra.stack_template import Synth, stack_config_text


def assert_nothing_left_behind() -> None:
    assert pulumi.runtime.get_root_resource() is None
    assert pulumi.runtime.settings.SETTINGS.monitor is None
    # The loop runs blocking work on a thread again, not inline on the loop's own thread.
    loop = asyncio.get_event_loop()
    worker = loop.run_until_complete(loop.run_in_executor(None, threading.get_ident))
    assert worker != threading.get_ident()


def test_an_evaluation_leaves_no_mocks_root_resource_or_inline_executor_behind(
    synth: Synth,
) -> None:
    assert synth("dev").resources("aws:ecs/service:Service")
    assert_nothing_left_behind()


def test_a_failing_program_leaves_nothing_behind_either() -> None:
    with pytest.raises(ConfigError, match="services"):
        evaluate("dev", stack_config_text("dev", {"services": "not a list"}))
    assert_nothing_left_behind()
