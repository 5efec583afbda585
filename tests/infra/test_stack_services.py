"""Several services share the cluster and the ALB, as the seed's "other services in the same
cluster": each gets its own repository, task definition, security group, target group, rule,
scaling and alarms.

The two-service stack is evaluated once and checked part by part, each part a subtest."""

import json
import re
from typing import Any

import pytest

from tests.infra.stack_template import StackTemplate, Synth, service_config

ADMIN_IMAGE = "public.ecr.aws/nginx/nginx:1.27"


def two_services(synth: Synth, **admin_changes: Any) -> StackTemplate:
    admin: dict[str, Any] = {
        "name": "admin",
        "image": ADMIN_IMAGE,
        "healthCheckCommand": None,
        "port": 80,
        "healthPath": "/",
        "cpu": 256,
        "memory": 512,
        "minCount": 1,
        "maxCount": 2,
        "desiredCount": 1,
        "routing": {"pathPatterns": ["/admin/*"], "hostHeaders": ["admin.example.com"]},
        **admin_changes,
    }
    return synth("prod", {"services": [service_config("prod"), admin]})


def two_services_share_the_cluster_and_alb_and_both_are_outputs(template: StackTemplate) -> None:
    cluster = template.resource("aws:ecs/cluster:Cluster")
    template.resource_count_is("aws:lb/loadBalancer:LoadBalancer", 1)
    template.resource_count_is("aws:ecs/cluster:Cluster", 1)
    services = template.resources("aws:ecs/service:Service")
    assert sorted(s.inputs["name"] for s in services) == [
        "admin-production-service",
        "api-production-service",
    ]
    assert {s.inputs["cluster"] for s in services} == {cluster.outputs["arn"]}

    api_group = template.has_resource_properties(
        "aws:lb/targetGroup:TargetGroup", {"name": "app-api-target-group", "port": 8000}
    )
    admin_group = template.has_resource_properties(
        "aws:lb/targetGroup:TargetGroup", {"port": 80, "healthCheck": {"path": "/"}}
    )
    # Not the seed's port: the name carries a hash of it (test_aws_api.py: replacement).
    assert re.fullmatch(r"app-admin-target-group-[0-9a-f]{6}", admin_group.inputs["name"])
    listener = template.has_resource_properties(
        "aws:lb/listener:Listener",
        {"defaultActions": [{"type": "forward", "targetGroupArn": api_group.outputs["arn"]}]},
    )
    rule = template.has_resource_properties(
        "aws:lb/listenerRule:ListenerRule",
        {
            "listenerArn": listener.outputs["arn"],
            "priority": 200,
            "conditions": [
                {"pathPattern": {"values": ["/admin/*"]}},
                {"hostHeader": {"values": ["admin.example.com"]}},
            ],
            "actions": [{"type": "forward", "targetGroupArn": admin_group.outputs["arn"]}],
        },
    )
    assert rule.ignore_changes == ()
    admin = template.has_resource_properties(
        "aws:ecs/service:Service",
        {
            "name": "admin-production-service",
            "desiredCount": 1,
            "loadBalancers": [
                {
                    "targetGroupArn": admin_group.outputs["arn"],
                    "containerName": "app-admin-container",
                    "containerPort": 80,
                }
            ],
        },
    )
    assert "admin-listener-rule" in admin.depends_on

    services = template.outputs["services"]
    assert sorted(services) == ["admin", "api"]
    assert services["admin"]["name"] == "admin-production-service"
    assert services["admin"]["log_group"] == "/ecs/app-admin-task"
    assert services["admin"]["image"] == ADMIN_IMAGE
    assert services["admin"]["task_definition_arn"].endswith(":task-definition/app-admin-task:1")
    # The top-level outputs stay about the first (the seed's) service.
    assert template.outputs["image"] == services["api"]["image"]


def a_service_with_an_existing_image_builds_nothing(template: StackTemplate) -> None:
    template.resource_count_is("docker:index/image:Image", 1)  # the api's build only
    template.resource_count_is("aws:ecr/repository:Repository", 2)
    template.has_resource_properties(
        "aws:ecr/repository:Repository", {"name": "my-application-admin"}
    )
    definitions = template.has_resource_properties(
        "aws:ecs/taskDefinition:TaskDefinition",
        {"family": "app-admin-task", "cpu": "256", "memory": "512"},
    ).inputs["containerDefinitions"]
    (container,) = json.loads(definitions)
    assert container["image"] == ADMIN_IMAGE
    assert "healthCheck" not in container  # the nginx image has no Python health checker
    assert {"name": "APP_VERSION", "value": "1.27"} in container["environment"]
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/ecs/app-admin-task"


def each_service_scales_and_is_watched_on_its_own(template: StackTemplate) -> None:
    template.has_resource_properties(
        "aws:appautoscaling/target:Target",
        {
            "resourceId": "service/production-app-cluster/admin-production-service",
            "minCapacity": 1,
            "maxCapacity": 2,
        },
    )
    template.resource_count_is("aws:appautoscaling/target:Target", 2)
    alarms = {
        a.inputs["name"] for a in template.resources("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    for service in ("api-production-service", "admin-production-service"):
        assert {
            f"{service}-target-5xx",
            f"{service}-unhealthy-hosts",
            f"{service}-p99-latency",
            f"{service}-cpu-high",
            f"{service}-memory-high",
        } <= alarms
    template.has_resource_properties(
        "aws:ecs/service:Service",
        {
            "name": "admin-production-service",
            "alarms": {
                "alarmNames": [
                    "admin-production-service-target-5xx",
                    "admin-production-service-unhealthy-hosts",
                    "admin-production-service-p99-latency",
                ]
            },
        },
    )
    dashboard = template.resource("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dashboard.inputs["dashboardBody"])
    titles = [widget["properties"]["title"] for widget in body["widgets"]]
    assert sum(title.startswith("admin-production-service:") for title in titles) == 3
    assert sum(title.startswith("api-production-service:") for title in titles) == 3


def test_a_second_service_can_use_a_traffic_shifting_strategy_on_its_own_rule(
    synth: Synth,
) -> None:
    template = two_services(
        synth,
        deployment={"strategy": "blue_green"},
        routing={"pathPatterns": ["/admin/*"], "priority": 10},
    )
    admin_rule = template.has_resource_properties(
        "aws:lb/listenerRule:ListenerRule",
        {
            "priority": 10,
            "actions": [{"forward": {"targetGroups": [{"weight": 100}, {"weight": 0}]}}],
        },
    )
    assert admin_rule.ignore_changes == ("actions",)
    template.has_resource_properties(
        "aws:ecs/service:Service",
        {
            "name": "admin-production-service",
            "loadBalancers": [
                {"advancedConfiguration": {"productionListenerRule": admin_rule.outputs["arn"]}}
            ],
        },
    )
    # The first service is still on a rolling deploy behind the listener's default action.
    template.has_resource_properties(
        "aws:ecs/service:Service",
        {"name": "api-production-service", "deploymentConfiguration": {"strategy": "ROLLING"}},
    )
    template.has_resource_properties(
        "aws:lb/listener:Listener", {"defaultActions": [{"type": "forward"}]}
    )


def dashboard_gives_each_service_a_row_of_its_own(template: StackTemplate) -> None:
    """CloudWatch places widgets where the body says: two on the same cells overlap, and a
    skipped row is an empty band. The alarm strip first, then a full row per service."""
    dashboard = template.resource("aws:cloudwatch/dashboard:Dashboard")
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    cells: list[tuple[int, int]] = []
    for widget in widgets:
        x, y, width, height = (widget[key] for key in ("x", "y", "width", "height"))
        cells += [(column, row) for column in range(x, x + width) for row in range(y, y + height)]
    assert len(cells) == len(set(cells)), "two widgets share a cell"
    rows = sorted({row for _, row in cells})
    assert rows == list(range(len(rows))), f"rows {rows} leave a gap"
    assert len(cells) == 24 * len(rows), "a row is not filled"
    for service in ("api-production-service", "admin-production-service"):
        charts = [w for w in widgets if w["properties"]["title"].startswith(f"{service}: ")]
        assert len({w["y"] for w in charts}) == 1 and len(charts) == 3, (service, charts)


TWO_SERVICE_PARTS = (
    two_services_share_the_cluster_and_alb_and_both_are_outputs,
    a_service_with_an_existing_image_builds_nothing,
    each_service_scales_and_is_watched_on_its_own,
    dashboard_gives_each_service_a_row_of_its_own,
)


def test_two_services_each_get_their_own_parts(synth: Synth, subtests: pytest.Subtests) -> None:
    template = two_services(synth)
    for part in TWO_SERVICE_PARTS:
        with subtests.test(part.__name__):
            part(template)
