"""Fixtures for the stack's mock tests.

Each test gets its own mocks: the `synth` fixture sets fresh Pulumi mocks (preview off, so
every value resolves) and only then runs the program, __main__.py, exactly as `pulumi up`
would run it, with a stack file's config plus the test's overrides.
"""

from collections.abc import Mapping
from typing import Any

import pytest

from infra.mock_cloud import evaluate
from tests.infra.stack_template import StackTemplate, Synth, stack_config_text


@pytest.fixture
def synth() -> Synth:
    """`synth(stack="prod", config={...})` evaluates the program under fresh mocks."""

    def run(stack: str = "prod", config: Mapping[str, Any] | None = None) -> StackTemplate:
        return StackTemplate(evaluate(stack, stack_config_text(stack, config)))

    return run
