"""dev is the same stack, smaller and disposable; prod is the seed's."""

import json

import pytest

from tests.infra.stack_template import StackTemplate, Synth, stack_file_config

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"


def test_dev_is_cheaper_shorter_lived_and_disposable(synth: Synth) -> None:
    template = synth("dev")
    template.has_resource_properties(
        TASK_DEFINITION,
        {
            "family": "app-api-task-dev",
            "cpu": "512",
            "memory": "1024",
            "runtimePlatform": {"cpuArchitecture": "ARM64"},
        },
    )
    template.has_resource_properties(
        "aws:ecs/service:Service",
        {"name": "api-dev-service", "desiredCount": 1, "healthCheckGracePeriodSeconds": 30},
    )
    template.has_resource_properties(
        "aws:appautoscaling/target:Target",
        {
            "minCapacity": 1,
            "maxCapacity": 3,
            "resourceId": "service/dev-app-cluster/api-dev-service",
        },
    )
    template.has_resource_properties(
        "aws:cloudwatch/logGroup:LogGroup", {"name": "/ecs/app-api-task-dev", "retentionInDays": 7}
    )
    template.has_resource_properties(
        "aws:ecr/repository:Repository", {"name": "my-application-api-dev", "forceDelete": True}
    )
    policy = json.loads(
        template.resource("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"]
    )
    assert [rule["selection"]["countNumber"] for rule in policy["rules"]] == [1, 10]
    template.has_resource_properties(
        "aws:lb/loadBalancer:LoadBalancer",
        {"name": "app-dev-lb", "enableDeletionProtection": False},
    )
    template.has_resource_properties("aws:ecs/cluster:Cluster", {"name": "dev-app-cluster"})
    template.resource_count_is("aws:cloudwatch/dashboard:Dashboard", 0)
    template.resource_count_is("aws:sns/topic:Topic", 0)
    for alarm in template.resources("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs.get("alarmActions", []) == []  # no topic to notify


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_environments_run_the_same_app_the_same_way(synth: Synth, stack: str) -> None:
    template: StackTemplate = synth(stack)
    definitions = json.loads(template.resource(TASK_DEFINITION).inputs["containerDefinitions"])
    (container,) = definitions
    assert container["name"] == "app-api-container"
    assert container["portMappings"] == [
        {"containerPort": 8000, "hostPort": 8000, "protocol": "tcp"}
    ]
    assert container["healthCheck"]["command"][0] == "CMD-SHELL"
    template.has_resource_properties(
        "aws:lb/targetGroup:TargetGroup",
        {"port": 8000, "healthCheck": {"path": "/health", "matcher": "200"}},
    )
    template.has_resource_properties(
        "aws:ecs/service:Service",
        {
            "deploymentMinimumHealthyPercent": 100,
            "deploymentMaximumPercent": 200,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "waitForSteadyState": True,
        },
    )
    template.has_resource_properties(
        "aws:appautoscaling/policy:Policy",
        {
            "name": "app-scaling-policy",
            "targetTrackingScalingPolicyConfiguration": {"targetValue": 70},
        },
    )


def test_both_stack_files_pin_a_region() -> None:
    for stack in ("dev", "prod"):
        assert stack_file_config(stack)["aws:region"] == "us-east-1"
