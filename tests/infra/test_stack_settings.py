"""Stack settings: defaults are the seed's, and bad config stops the program before any
resource, with a message naming the key, the value given and what is allowed."""

import json
from typing import Any

import pytest

from app.contract import (
    HEALTH_CHECK_COMMAND,
    HEALTH_PATH,
    KEEP_ALIVE_TIMEOUT_SECONDS,
    PORT,
    SHUTDOWN_TIMEOUT_SECONDS,
)
from infra.mock_cloud import FakeAws, RecordingMonitor, evaluate
from infra.settings import ConfigError, StackSettings, parse_settings
from tests.infra.stack_template import stack_config_text

NAMESPACE = "ecs-fargate-app"
RECIPIENT = {"alarmEmails": ["oncall@example.com"]}


def parse(
    raw: dict[str, Any] | None = None,
    *,
    stack: str = "production",
    region: str | None = "us-east-1",
) -> StackSettings:
    """Settings from config values as Pulumi passes them (structures as JSON text). Without a
    `monitoring` key, production gets an alarm recipient, which it requires."""
    raw = dict(raw or {})
    if stack == "production":
        raw.setdefault("monitoring", RECIPIENT)
    text = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()
    }
    return parse_settings(text, region=region, stack=stack, namespace=NAMESPACE)


def test_config_with_only_an_alarm_recipient_describes_the_seed_stack() -> None:
    settings = parse()
    (api,) = settings.services
    assert settings.environment == "production"
    assert settings.cluster_name == "production-app-cluster"
    assert settings.load_balancer_name == "app-production-lb"
    assert settings.network.mode == "default"
    assert (api.names.service, api.names.task_family, api.names.container) == (
        "api-production-service",
        "app-api-task",
        "app-api-container",
    )
    assert (api.names.repository, api.names.target_group) == (
        "my-application-api",
        "app-api-target-group",
    )
    assert (api.cpu, api.memory, api.cpu_architecture, api.port, api.health_path) == (
        1024,
        3072,
        "ARM64",
        8000,
        "/health",
    )
    assert (api.desired_count, api.min_count, api.max_count) == (2, 2, 10)
    assert (api.scaling.policy_name, api.scaling.cpu_target_percent) == ("app-scaling-policy", 70)
    assert api.deployment.strategy == "rolling"
    assert (api.deployment.minimum_healthy_percent, api.deployment.maximum_percent) == (100, 200)


def test_defaults_agree_with_the_app_contract() -> None:
    settings = parse()
    api = settings.services[0]
    assert settings.load_balancer.idle_timeout_seconds < KEEP_ALIVE_TIMEOUT_SECONDS
    assert api.stop_timeout_seconds > SHUTDOWN_TIMEOUT_SECONDS
    assert api.health_check_command == HEALTH_CHECK_COMMAND
    assert (api.port, api.health_path) == (PORT, HEALTH_PATH)


def test_names_outside_production_carry_the_environment() -> None:
    names = parse(stack="dev").services[0].names
    assert names.task_family == "app-api-task-dev"
    assert names.repository == "my-application-api-dev"
    assert names.target_group == "app-api-target-group-dev"
    assert names.service == "api-dev-service"
    assert names.container == "app-api-container"


def test_the_top_level_image_key_replaces_the_first_services_build() -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-application-api:v7"
    settings = parse({"image": image, "services": [{"build": {"context": "app"}}]})
    assert settings.services[0].image == image
    assert settings.services[0].build_source is None


BAD_CONFIG = [
    pytest.param(
        {"services": [{"cpu": 1024, "memory": 3000}]},
        ["ecs-fargate-app:services[0].memory:", "cpu 1024", "2048-8192 in steps of 1024", "3000"],
        id="memory-not-valid-for-cpu",
    ),
    pytest.param(
        {"services": [{"cpu": 256, "memory": 1536}]},
        ["services[0].memory", "512, 1024, 2048", "1536"],
        id="memory-not-offered-for-256",
    ),
    pytest.param(
        {"services": [{"cpu": 1000}]},
        ["ecs-fargate-app:services[0].cpu:", "256, 512, 1024, 2048, 4096, 8192, 16384", "1000"],
        id="cpu-not-a-fargate-size",
    ),
    pytest.param(
        {"services": [{"minCount": 5, "maxCount": 3, "desiredCount": 4}]},
        ["services[0].maxCount:", "at least minCount (5)", "(given: 3)"],
        id="min-above-max",
    ),
    pytest.param(
        {"services": [{"minCount": 2, "maxCount": 4, "desiredCount": 7}]},
        ["services[0].desiredCount:", "between minCount (2) and maxCount (4)", "(given: 7)"],
        id="desired-above-max",
    ),
    pytest.param(
        {"services": [{"minCount": 2, "maxCount": 4, "desiredCount": 1}]},
        ["services[0].desiredCount:", "between minCount (2) and maxCount (4)", "(given: 1)"],
        id="desired-below-min",
    ),
    pytest.param(
        {"services": [{"healthPath": "health"}]},
        ["services[0].healthPath:", "starting with '/'", "'health'"],
        id="health-path-without-slash",
    ),
    pytest.param(
        {"services": [{"deployment": {"strategy": "bluegreen"}}]},
        [
            "services[0].deployment.strategy:",
            "'rolling', 'blue_green', 'canary' or 'linear'",
            "'bluegreen'",
        ],
        id="unknown-strategy",
    ),
    pytest.param(
        {"image": "my-application-api"},
        ["ecs-fargate-app:image:", "neither a tag nor a digest", "'my-application-api'"],
        id="image-without-tag-or-digest",
    ),
    pytest.param(
        {"image": "repo@sha256:1234"},
        ["ecs-fargate-app:image:", "64 lowercase hex", "'repo@sha256:1234'"],
        id="image-with-short-digest",
    ),
    pytest.param(
        {"services": [{"image": "Repo:v1"}]},
        ["services[0].image:", "not a valid repository name", "'Repo:v1'"],
        id="service-image-uppercase",
    ),
    pytest.param(
        {"services": [{"port": 70000}]},
        ["services[0].port:", "less than or equal to 65535", "70000"],
        id="port-too-high",
    ),
    pytest.param(
        {"services": [{"port": 0}]},
        ["services[0].port:", "greater than or equal to 1", "(given: 0)"],
        id="port-zero",
    ),
    pytest.param(
        {"logRetentionDays": 10},
        ["ecs-fargate-app:logRetentionDays:", "allowed days: 1, 3, 5, 7, 14, 30", "'10'"],
        id="retention-not-a-cloudwatch-period",
    ),
    pytest.param(
        {"services": [{"spot": True}]},
        ["services[0].spot:", "runs X86_64 tasks only", "cpuArchitecture: X86_64"],
        id="spot-on-arm64",
    ),
    pytest.param(
        {
            "services": [
                {"deployment": {"strategy": "canary"}, "scaling": {"requestsPerTarget": 500}}
            ]
        },
        ["services[0].scaling.requestsPerTarget:", "rolling only", "(given: 500)"],
        id="request-scaling-with-traffic-shifting",
    ),
    pytest.param(
        {"services": [{"deployment": {"minimumHealthyPercent": 100, "maximumPercent": 100}}]},
        ["services[0].deployment.maximumPercent:", "above minimumHealthyPercent (100)"],
        id="no-room-to-roll",
    ),
    pytest.param(
        {"loadBalancer": {"certificateArn": "my-cert"}},
        ["loadBalancer.certificateArn:", "ACM certificate ARN", "'my-cert'"],
        id="certificate-not-an-arn",
    ),
    pytest.param(
        {"loadBalancer": {"targetHealth": {"intervalSeconds": 5, "timeoutSeconds": 5}}},
        ["loadBalancer.targetHealth.timeoutSeconds:", "shorter than intervalSeconds (5)"],
        id="health-timeout-not-below-interval",
    ),
    pytest.param(
        {"services": [{"name": "api"}, {"name": "api", "routing": {"pathPatterns": ["/x/*"]}}]},
        ["services[1].name:", "must be unique", "'api'"],
        id="duplicate-service-names",
    ),
    pytest.param(
        {"services": [{"name": "api"}, {"name": "admin"}]},
        ["services[1].routing:", "needs pathPatterns or hostHeaders"],
        id="second-service-without-rule",
    ),
    pytest.param(
        {
            "services": [
                {"name": "api"},
                {"name": "a", "routing": {"pathPatterns": ["/a/*"], "priority": 7}},
                {"name": "b", "routing": {"pathPatterns": ["/b/*"], "priority": 7}},
            ]
        },
        ["services[2].routing.priority:", "also used by services[1]", "(given: 7)"],
        id="duplicate-rule-priority",
    ),
    pytest.param(
        {"services": [{"name": "billing-gateways"}]},
        ["services[0].targetGroupName:", "at most 32", "'app-billing-gateways-target-group'"],
        id="derived-target-group-name-too-long",
    ),
    pytest.param(
        {"services": [{"name": "billing-gateway", "deployment": {"strategy": "blue_green"}}]},
        ["services[0].targetGroupName:", "blue/green alternate", "-target-group-alt'"],
        id="alternate-target-group-name-too-long",
    ),
    pytest.param(
        {"services": [{"image": "nginx:1.27", "build": {"context": "app"}}]},
        ["services[0].image:", "either image or build"],
        id="image-and-build",
    ),
    pytest.param(
        {"services": [{"build": {"context": "no-such-dir"}}]},
        ["services[0].build.context:", "not a directory of the project", "'no-such-dir'"],
        id="build-context-missing",
    ),
    pytest.param(
        {"services": [{"build": {"context": "../elsewhere"}}]},
        ["services[0].build.context:", "relative path inside the project"],
        id="build-context-outside-project",
    ),
    pytest.param(
        {"imag": "nginx:1.27"},
        ["ecs-fargate-app:imag:", "unknown key; allowed keys here:", "image", "services"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        {"services": [{"cpuu": 512}]},
        ["services[0].cpuu:", "unknown key", "cpu, cpuArchitecture"],
        id="unknown-nested-key",
    ),
    pytest.param(
        {"loadBalancer": {"idleTimeoutSeconds": 65}},
        ["loadBalancer.idleTimeoutSeconds:", "less than 65", "(given: 65)"],
        id="alb-idle-timeout-not-below-app-keep-alive",
    ),
    pytest.param(
        {"appVersion": "", "services": [{"healthMessage": ""}]},
        ["ecs-fargate-app:appVersion:", "services[0].healthMessage:", "at least 1 character"],
        id="blank-app-environment",
    ),
    pytest.param(
        {"services": [{"deployment": {"strategy": "canary", "canaryPercent": 5.55}}]},
        ["services[0].deployment.canaryPercent:", "steps of 0.1", "5.55"],
        id="canary-percent-not-a-tenth",
    ),
    pytest.param(
        {"services": [{"deployment": {"strategy": "linear", "linearStepPercent": 3.33}}]},
        ["services[0].deployment.linearStepPercent:", "steps of 0.1", "3.33"],
        id="linear-step-not-a-tenth",
    ),
    pytest.param(
        {"monitoring": {"snsTopic": True}},
        [
            "ecs-fargate-app:monitoring:",
            "production alarms must reach someone",
            "monitoring.alarmEmails",
            "monitoring.alarmTopicArn",
        ],
        id="production-alarms-to-nobody",
    ),
    pytest.param(
        {"monitoring": {"alarmTopicArn": "alarms"}},
        ["monitoring.alarmTopicArn:", "must be an SNS topic ARN", "'alarms'"],
        id="alarm-topic-not-an-arn",
    ),
    pytest.param(
        {
            "monitoring": {
                "alarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops",
                "alarmEmails": ["a@example.com"],
            }
        },
        ["monitoring.alarmTopicArn:", "drop snsTopic and alarmEmails"],
        id="alarm-topic-and-emails",
    ),
    pytest.param(
        {"loadBalancer": {"accessLogs": {"prefix": "logs/AWSLogs"}}},
        ["loadBalancer.accessLogs.prefix:", "without 'AWSLogs'"],
        id="access-log-prefix-with-awslogs",
    ),
    pytest.param(
        {"services": [{"build": {"dockerfile": "app/Nope"}}]},
        ["services[0].build.dockerfile:", "is not a file of the project", "'app/Nope'"],
        id="dockerfile-missing",
    ),
    pytest.param(
        {"region": "eu-west-1"},
        ["ecs-fargate-app:region:", "aws:region instead"],
        id="region-in-project-namespace",
    ),
]


@pytest.mark.parametrize(("raw", "fragments"), BAD_CONFIG)
def test_bad_config_names_key_value_and_what_is_allowed(
    raw: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(raw)
    message = str(raised.value)
    assert message.startswith("Invalid configuration for stack 'production'")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_missing_region_says_which_key_and_file() -> None:
    with pytest.raises(ConfigError) as raised:
        parse(stack="dev", region=None)
    assert str(raised.value).splitlines()[1:] == [
        "  - aws:region: is not set; add `aws:region: us-east-1` (or your region) to "
        "Pulumi.dev.yaml"
    ]


def test_a_bad_key_does_not_hide_the_keys_after_it() -> None:
    with pytest.raises(ConfigError) as raised:
        parse({"region": "eu-west-1", "services": "[{"}, stack="dev")
    assert [line.split(":")[1] for line in str(raised.value).splitlines()[1:]] == [
        "region",
        "services",
    ]


def test_names_at_aws_limits_and_structured_text_with_leading_space() -> None:
    # ECR: up to 256 characters.
    assert parse({"services": [{"repositoryName": "r" * 256}]}).services[0].names.repository == (
        "r" * 256
    )
    # A structure passed with leading whitespace (an indented YAML block) is still decoded.
    assert parse({"services": '\n  [{"port": 8080}]'}, stack="dev").services[0].port == 8080


def test_target_group_names_follow_the_dedicated_vpcs_range() -> None:
    """A new CIDR block is a new VPC, so new target groups: their names must differ."""
    names = {
        parse({"network": {"mode": "dedicated", "cidrBlock": cidr}}, stack="dev")
        .services[0]
        .names.target_group
        for cidr in ("10.0.0.0/16", "10.1.0.0/16")
    }
    assert len(names) == 2, names


def test_a_shortened_target_group_name_keeps_single_hyphens() -> None:
    """The name is cut to leave room for the hash; a cut just after a hyphen drops it."""
    service = parse({"services": [{"targetGroupName": "X" * 24 + "-group", "port": 8080}]})
    names = service.services[0].names
    for name in (names.target_group, names.alternate_target_group):
        assert name.startswith("X" * 21) and "--" not in name and len(name) <= 32, name


def test_malformed_structured_value_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"ecs-fargate-app:services: is not valid YAML/JSON"):
        parse_settings({"services": "[{"}, region="us-east-1", stack="dev", namespace=NAMESPACE)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        parse({"services": [{"port": 0, "healthPath": "x", "cpu": 3}]})
    assert str(raised.value).count("\n  - ") == 3


def test_the_program_declares_nothing_when_config_is_bad() -> None:
    """Run __main__.py itself: the error surfaces before the first resource registration."""
    config = stack_config_text("prod", {"services": [{"memory": 3000}]})
    monitor = RecordingMonitor(FakeAws(region="us-east-1"))
    with pytest.raises(ConfigError, match=r"services\[0\]\.memory: is not valid with cpu 1024"):
        evaluate("prod", config, monitor=monitor)
    assert monitor.recorded == []
    assert monitor.resources == {}


def test_tenths_are_accepted_and_dev_may_stay_silent() -> None:
    deployment = {"strategy": "canary", "canaryPercent": 5.5, "linearStepPercent": 3.3}
    settings = parse({"services": [{"deployment": deployment}]})
    assert settings.services[0].deployment.canary_percent == 5.5
    assert settings.services[0].deployment.linear_step_percent == 3.3
    assert not parse({}, stack="dev").monitoring.alarm_emails  # no recipient needed


def test_an_existing_topic_receives_production_alarms() -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:ops-alarms"
    assert parse({"monitoring": {"alarmTopicArn": topic}}).monitoring.alarm_topic_arn == topic


EXACT_LINES = [
    pytest.param(
        {"imag": "x"},
        "ecs-fargate-app:imag: unknown key; allowed keys here: appVersion, cluster, environment, "
        "image, loadBalancer, logRetentionDays, monitoring, network, preflightChecks, registry, "
        "services (given: 'x')",
        id="top-level-keys-without-region",  # the region is aws:region, never ours
    ),
    pytest.param(
        {"loadBalancer": {"targetHealth": {"intervall": 5}}},
        "ecs-fargate-app:loadBalancer.targetHealth.intervall: unknown key; allowed keys here: "
        "deregistrationDelaySeconds, healthyThreshold, intervalSeconds, timeoutSeconds, "
        "unhealthyThreshold (given: 5)",
        id="keys-two-sections-down",
    ),
    pytest.param(
        {"services": [{"routing": {"pathPaterns": ["/a/*"]}}]},
        "ecs-fargate-app:services[0].routing.pathPaterns: unknown key; allowed keys here: "
        "hostHeaders, pathPatterns, priority (given: ['/a/*'])",
        id="keys-below-a-list-item",
    ),
    pytest.param(
        {"services": [{"build": {"contxt": "app"}}]},
        "ecs-fargate-app:services[0].build.contxt: unknown key; allowed keys here: "
        "args, context, dockerfile (given: 'app')",
        id="keys-of-an-optional-section",
    ),
    pytest.param(
        {"services": [{"name": "api"}, {"name": "admin"}]},
        "ecs-fargate-app:services[1].routing: needs pathPatterns or hostHeaders: only the first "
        "service receives the requests no rule matches",
        id="a-section-is-not-echoed",
    ),
    pytest.param(
        {"services": [{"serviceName": "api service"}]},
        "ecs-fargate-app:services[0].serviceName: is not a valid ECS name (1-255 letters, "
        "digits, '-' and '_') (given: 'api service')",
        id="ecs-service-name",
    ),
    pytest.param(
        {"services": [{"taskFamily": "app task"}]},
        "ecs-fargate-app:services[0].taskFamily: is not a valid ECS name (1-255 letters, "
        "digits, '-' and '_') (given: 'app task')",
        id="ecs-task-family",
    ),
    pytest.param(
        {"services": [{"containerName": "app/container"}]},
        "ecs-fargate-app:services[0].containerName: is not a valid ECS name (1-255 letters, "
        "digits, '-' and '_') (given: 'app/container')",
        id="ecs-container-name",
    ),
    pytest.param(
        {"services": [{"repositoryName": "My-Repo"}]},
        "ecs-fargate-app:services[0].repositoryName: is not a valid ECR repository name "
        "(lowercase letters, digits, '.', '_', '-', '/') (given: 'My-Repo')",
        id="ecr-repository-name",
    ),
    pytest.param(
        # ECR CreateRepository: repositoryName is 2 to 256 characters.
        {"services": [{"repositoryName": "r" * 257}]},
        "ecs-fargate-app:services[0].repositoryName: is not a valid ECR repository name "
        f"(lowercase letters, digits, '.', '_', '-', '/') (given: '{'r' * 257}')",
        id="ecr-repository-name-257",
    ),
    pytest.param(
        {"services": [{"targetGroupName": "t" * 33}]},
        "ecs-fargate-app:services[0].targetGroupName: load balancer and target group names are "
        "at most 32 letters, digits and hyphens, not starting or ending with a hyphen (given: "
        f"'{'t' * 33}')",
        id="target-group-name-33",
    ),
    pytest.param(
        {"services": [{"targetGroupName": "t" * 29, "deployment": {"strategy": "blue_green"}}]},
        "ecs-fargate-app:services[0].targetGroupName: load balancer and target group names are "
        "at most 32 letters, digits and hyphens, not starting or ending with a hyphen (this is "
        f"the blue/green alternate: the name plus '-alt') (given: '{'t' * 29}-alt')",
        id="blue-green-alternate-name-33",
    ),
    pytest.param(
        {"image": "nginx:{key}"},
        "ecs-fargate-app:image: image reference 'nginx:{key}' has tag '{key}'; a tag is 1-128 "
        "characters of letters, digits, '_', '.' and '-', not starting with '.' or '-' (expected "
        "'<repository>:<tag>' or '<repository>@sha256:<64 hex digits>') (given: 'nginx:{key}')",
        id="braces-in-a-value-are-shown-as-given",
    ),
]


@pytest.mark.parametrize(("raw", "line"), EXACT_LINES)
def test_the_line_a_user_reads(raw: dict[str, Any], line: str) -> None:
    """Whole lines: the path to the key, the message, the keys allowed there, the value as typed."""
    with pytest.raises(ConfigError) as raised:
        parse(raw, stack="dev")
    assert str(raised.value).splitlines()[1:] == [f"  - {line}"]
