"""Fixtures for the stack's mock tests.

Each test gets its own mocks: the `synth` fixture sets fresh Pulumi mocks (preview off, so
every value resolves) and only then runs the program, __main__.py, exactly as `pulumi up`
would run it, with a stack file's config plus the test's overrides.
"""

import gc
from collections.abc import Mapping
from typing import Any

import pulumi.runtime.resource
import pulumi_aws
import pytest
from pulumi.runtime.proto import source_pb2

from infra.mock_cloud import evaluate
from tests.infra.aws_rules import preload_models
from tests.infra.stack_template import StackTemplate, Synth, stack_config_text

# Speed (the suite must stay well under 15 s on 2 cores). pulumi_aws loads each module on
# first use: load the ones the program uses now, then move every object alive so far out of
# the garbage collector's view; the provider SDK is hundreds of thousands of long-lived
# objects that each full collection would rescan. Collect less often, too: an evaluation
# allocates tens of thousands of short-lived objects. Together: about 0.27 s -> 0.15 s per
# evaluation.
for _module, _class in (
    ("appautoscaling", "Policy"),
    ("cloudwatch", "MetricAlarm"),
    ("ec2", "SecurityGroup"),
    ("ecr", "Repository"),
    ("ecs", "Service"),
    ("iam", "Role"),
    ("lb", "ListenerRule"),
    ("s3", "Bucket"),
    ("sns", "Topic"),
    ("vpc", "SecurityGroupIngressRule"),
):
    getattr(getattr(pulumi_aws, _module), _class)
# AWS's API models, which tests/infra/aws_rules.py validates requests against: large, and
# read-only once loaded.
preload_models()
gc.freeze()
# Each registration walks and serializes the Python stack for the engine's source positions,
# which Pulumi's mocks never read: about 12 % of an evaluation.
pulumi.runtime.resource._get_stack_trace = source_pb2.StackTrace
gc.set_threshold(50_000, 20, 20)


@pytest.fixture
def synth() -> Synth:
    """`synth(stack="prod", config={...})` evaluates the program under fresh mocks."""

    def run(stack: str = "prod", config: Mapping[str, Any] | None = None) -> StackTemplate:
        return StackTemplate(evaluate(stack, stack_config_text(stack, config)))

    return run
