"""The deployment strategy switch: rolling (the seed's) or ECS's native traffic shifting."""

from typing import Any

import pytest

from infra.settings import CATCH_ALL_PRIORITY
from tests.infra.stack_template import ABSENT, StackTemplate, Synth, service_config

TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
RULE = "aws:lb/listenerRule:ListenerRule"
SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

# Per strategy: the deployment settings given (defaults where none) and what ECS receives.
STRATEGIES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "blue_green": (
        {},
        {
            "strategy": "BLUE_GREEN",
            "bakeTimeInMinutes": "5",
            "canaryConfiguration": ABSENT,
            "linearConfiguration": ABSENT,
        },
    ),
    "canary": (
        {"bakeTimeMinutes": 10, "canaryPercent": 5.5, "canaryBakeTimeMinutes": 20},
        {
            "strategy": "CANARY",
            "bakeTimeInMinutes": "10",
            "canaryConfiguration": {"canaryPercent": 5.5, "canaryBakeTimeInMinutes": "20"},
            "linearConfiguration": ABSENT,
        },
    ),
    "linear": (
        {},
        {
            "strategy": "LINEAR",
            "bakeTimeInMinutes": "5",
            "canaryConfiguration": ABSENT,
            "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": "2"},
        },
    ),
}


def with_strategy(synth: Synth, strategy: str, **deployment: Any) -> StackTemplate:
    service = service_config("prod", deployment={"strategy": strategy, **deployment})
    return synth("prod", {"services": [service]})


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_traffic_shifting_strategies_wire_ecs_native_deployments(
    synth: Synth, strategy: str
) -> None:
    deployment, expected_configuration = STRATEGIES[strategy]
    template = with_strategy(synth, strategy, **deployment)

    primary = template.has_resource_properties(TARGET_GROUP, {"name": "app-api-target-group"})
    alternate = template.has_resource_properties(
        TARGET_GROUP,
        {
            "name": "app-api-target-group-alt",
            "port": 8000,
            "targetType": "ip",
            "healthCheck": {"path": "/health", "matcher": "200"},
        },
    )
    template.resource_count_is(TARGET_GROUP, 2)

    # The listener's default action no longer points at one colour; a catch-all production
    # rule forwards by weight, and ECS moves the weights (Pulumi must not undo that).
    listener = template.has_resource_properties(
        "aws:lb/listener:Listener",
        {"port": 80, "defaultActions": [{"type": "fixed-response", "targetGroupArn": ABSENT}]},
    )
    # A path no rule routes gets a plain-text 404 from the load balancer itself.
    assert listener.inputs["defaultActions"][0]["fixedResponse"] == {
        "statusCode": "404",
        "contentType": "text/plain",
        "messageBody": "Not found",
    }
    rule = template.has_resource_properties(
        RULE,
        {
            "listenerArn": listener.outputs["arn"],
            "priority": CATCH_ALL_PRIORITY,
            "conditions": [{"pathPattern": {"values": ["/*"]}}],
            "actions": [
                {
                    "type": "forward",
                    "forward": {
                        "targetGroups": [
                            {"arn": primary.outputs["arn"], "weight": 100},
                            {"arn": alternate.outputs["arn"], "weight": 0},
                        ]
                    },
                }
            ],
        },
    )
    assert rule.ignore_changes == ("actions",)

    role = template.resource("aws:iam/role:Role", "api-load-balancer-role")
    template.has_resource_properties(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {
            "role": role.outputs["name"],
            "policyArn": (
                "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
            ),
        },
    )
    service = template.has_resource_properties(
        SERVICE,
        {
            "deploymentConfiguration": expected_configuration,
            "loadBalancers": [
                {
                    "targetGroupArn": primary.outputs["arn"],
                    "containerName": "app-api-container",
                    "containerPort": 8000,
                    "advancedConfiguration": {
                        "alternateTargetGroupArn": alternate.outputs["arn"],
                        "productionListenerRule": rule.outputs["arn"],
                        "roleArn": role.outputs["arn"],
                    },
                }
            ],
            # ECS: "The deployment circuit breaker can only be used for services using the
            # rolling update (ECS) deployment type." The alarms roll back instead.
            "deploymentCircuitBreaker": ABSENT,
            "alarms": {"enable": True, "rollback": True},
        },
    )
    assert "api-listener-rule" in service.depends_on

    # Traffic alternates between the groups, so target-group alarms watch both.
    five_xx = template.has_resource_properties(
        ALARM, {"name": "api-production-service-target-5xx", "metricName": ABSENT}
    )
    queries = five_xx.inputs["metricQueries"]
    assert [query["metric"]["dimensions"]["TargetGroup"] for query in queries[:2]] == [
        primary.outputs["arnSuffix"],
        alternate.outputs["arnSuffix"],
    ]
    assert queries[2] == {
        "id": "combined",
        "expression": "SUM([m0, m1])",
        "label": "HTTPCode_Target_5XX_Count (sum of both target groups)",
        "returnData": True,
    }
    template.has_resource_properties(
        ALARM,
        {
            "name": "api-production-service-p99-latency",
            "metricQueries": [
                {"metric": {"stat": "p99"}},
                {"metric": {"stat": "p99"}},
                {"expression": "MAX([m0, m1])"},
            ],
        },
    )
    template.has_resource_properties(
        ALARM,
        {
            "name": "api-production-service-unhealthy-hosts",
            "metricQueries": [
                {"metric": {"metricName": "UnHealthyHostCount", "stat": "Maximum"}},
                {"metric": {"metricName": "UnHealthyHostCount", "stat": "Maximum"}},
                {"expression": "MAX([m0, m1])"},  # the worse group, not their total
            ],
        },
    )


def test_alarms_over_both_target_groups_keep_the_rolling_alarms_settings(synth: Synth) -> None:
    """Watching two groups changes where the data comes from, not when the alarm fires."""
    template = with_strategy(synth, "blue_green")
    rolling = synth("prod")
    shared = (
        "alarmDescription", "threshold", "evaluationPeriods", "datapointsToAlarm",
        "comparisonOperator", "treatMissingData", "alarmActions", "okActions",
    )  # fmt: skip
    for alarm in ("target-5xx", "unhealthy-hosts", "p99-latency"):
        name = f"api-production-service-{alarm}"
        before = rolling.has_resource_properties(ALARM, {"name": name}).inputs
        after = template.has_resource_properties(ALARM, {"name": name, "metricName": ABSENT}).inputs
        assert {key: after.get(key) for key in shared} == {key: before[key] for key in shared}


def test_rolling_has_no_second_target_group_rule_or_traffic_role(synth: Synth) -> None:
    template = with_strategy(synth, "rolling", alarmRollback=False, waitForSteadyState=False)
    template.resource_count_is(TARGET_GROUP, 1)
    template.resource_count_is(RULE, 0)
    assert not [r for r in template.resources("aws:iam/role:Role") if "load-balancer" in r.name]
    template.has_resource_properties(
        SERVICE,
        {
            "deploymentConfiguration": {"strategy": "ROLLING", "bakeTimeInMinutes": ABSENT},
            "loadBalancers": [{"advancedConfiguration": ABSENT}],
            "alarms": {"enable": True, "rollback": False},
            "waitForSteadyState": False,
        },
    )


def test_each_role_says_what_it_is_for(synth: Synth) -> None:
    """Blue/green adds a third role beside the execution and task roles; in IAM's console only
    the description tells them apart."""
    template = synth("prod", {"services": [service_config(deployment={"strategy": "blue_green"})]})
    descriptions = {
        role.name: role.inputs.get("description", "")
        for role in template.resources("aws:iam/role:Role")
    }
    assert set(descriptions) == {"api-execution-role", "api-task-role", "api-load-balancer-role"}
    assert "api-production-service" in descriptions["api-load-balancer-role"]
    assert all(
        "app-api-task" in descriptions[role] for role in ("api-execution-role", "api-task-role")
    )
    assert len(set(descriptions.values())) == 3
