"""Alarms, notifications, dashboard, and the optional scaling policies."""

import json

from tests.infra.stack_template import ABSENT, StackTemplate, Synth, service_config

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:appautoscaling/policy:Policy"


def suffixes(template: StackTemplate) -> tuple[str, str]:
    alb = template.resource("aws:lb/loadBalancer:LoadBalancer")
    target_group = template.resource("aws:lb/targetGroup:TargetGroup")
    return alb.outputs["arnSuffix"], target_group.outputs["arnSuffix"]


def test_alarms_watch_5xx_unhealthy_hosts_latency_cpu_and_memory(synth: Synth) -> None:
    template = synth("prod")
    topic = template.resource("aws:sns/topic:Topic")
    actions = [topic.outputs["arn"]]
    alb, group = suffixes(template)
    target_dimensions = {"LoadBalancer": alb, "TargetGroup": group}
    service_dimensions = {
        "ClusterName": "production-app-cluster",
        "ServiceName": "api-production-service",
    }
    expected = [
        ("app-production-lb-5xx", "HTTPCode_ELB_5XX_Count", {"LoadBalancer": alb}, "Sum", 10),
        (
            "api-production-service-target-5xx",
            "HTTPCode_Target_5XX_Count",
            target_dimensions,
            "Sum",
            10,
        ),
        (
            "api-production-service-unhealthy-hosts",
            "UnHealthyHostCount",
            target_dimensions,
            "Maximum",
            0,
        ),
        ("api-production-service-cpu-high", "CPUUtilization", service_dimensions, "Average", 85),
        (
            "api-production-service-memory-high",
            "MemoryUtilization",
            service_dimensions,
            "Average",
            85,
        ),
    ]
    for name, metric, dimensions, statistic, threshold in expected:
        template.has_resource_properties(
            ALARM,
            {
                "name": name,
                "metricName": metric,
                "dimensions": dimensions,
                "statistic": statistic,
                "threshold": threshold,
                "period": 60,
                "comparisonOperator": "GreaterThanThreshold",
                "treatMissingData": "notBreaching",
                "alarmActions": actions,
                "okActions": actions,
            },
        )
    template.has_resource_properties(
        ALARM,
        {
            "name": "api-production-service-p99-latency",
            "metricName": "TargetResponseTime",
            "extendedStatistic": "p99",
            "statistic": ABSENT,
            "threshold": 1,
            "dimensions": target_dimensions,
        },
    )
    template.resource_count_is(ALARM, 6)
    template.resource_count_is("aws:cloudwatch/dashboard:Dashboard", 1)
    # The operator's recipient (Pulumi.prod.yaml leaves it to them; production requires one).
    template.has_resource_properties(
        "aws:sns/topicSubscription:TopicSubscription",
        {"protocol": "email", "endpoint": "oncall@example.com"},
    )


def test_alarm_emails_subscribe_to_the_topic(synth: Synth) -> None:
    emails = ["oncall@example.com", "team@example.com"]
    template = synth("dev", {"monitoring": {"alarmEmails": emails, "p99LatencySeconds": 0.5}})
    topic = template.has_resource_properties("aws:sns/topic:Topic", {"name": "app-dev-alarms"})
    for email in emails:
        template.has_resource_properties(
            "aws:sns/topicSubscription:TopicSubscription",
            {"topic": topic.outputs["arn"], "protocol": "email", "endpoint": email},
        )
    template.has_resource_properties(
        ALARM,
        {
            "name": "api-dev-service-p99-latency",
            "threshold": 0.5,
            "alarmActions": [topic.outputs["arn"]],
        },
    )


def test_an_existing_topic_receives_every_alarm_and_none_is_created(synth: Synth) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:ops-alarms"
    template = synth("prod", {"monitoring": {"alarmTopicArn": topic}})
    template.resource_count_is("aws:sns/topic:Topic", 0)
    template.resource_count_is("aws:sns/topicSubscription:TopicSubscription", 0)
    alarms = template.resources(ALARM)
    assert len(alarms) == 6
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topic], alarm.name
        assert alarm.inputs["okActions"] == [topic], alarm.name


def test_dev_alarms_may_notify_nobody(synth: Synth) -> None:
    template = synth("dev")
    template.resource_count_is("aws:sns/topic:Topic", 0)
    assert all(alarm.inputs.get("alarmActions", []) == [] for alarm in template.resources(ALARM))


def test_dashboard_charts_each_service(synth: Synth) -> None:
    template = synth("prod")
    alb, group = suffixes(template)
    dashboard = template.has_resource_properties(
        "aws:cloudwatch/dashboard:Dashboard", {"dashboardName": "app-production"}
    )
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    alarms = {alarm.outputs["arn"] for alarm in template.resources(ALARM)}
    assert set(widgets[0]["properties"]["alarms"]) == alarms
    metrics = [metric for widget in widgets[1:] for metric in widget["properties"]["metrics"]]
    assert ["AWS/ECS", "CPUUtilization", "ClusterName", "production-app-cluster",
            "ServiceName", "api-production-service"] in metrics  # fmt: skip
    assert ["AWS/ApplicationELB", "TargetResponseTime", "TargetGroup", group,
            "LoadBalancer", alb, {"stat": "p99"}] in metrics  # fmt: skip
    assert all(widget["properties"].get("region", "us-east-1") == "us-east-1" for widget in widgets)


def test_optional_memory_and_request_count_scaling(synth: Synth) -> None:
    scaling = {
        "memoryTargetPercent": 75,
        "requestsPerTarget": 1000,
        "scaleInCooldownSeconds": 600,
        "scaleOutCooldownSeconds": 30,
    }
    template = synth("prod", {"services": [service_config("prod", scaling=scaling)]})
    alb, group = suffixes(template)
    template.resource_count_is(POLICY, 3)
    # Logical names are part of the URN: renaming one replaces the policy on the next `up`.
    assert sorted(policy.path for policy in template.resources(POLICY)) == [
        ("api-scaling", "api-scaling-cpu-policy"),
        ("api-scaling", "api-scaling-memory-policy"),
        ("api-scaling", "api-scaling-requests-policy"),
    ]
    expected = [
        ("app-scaling-policy", "ECSServiceAverageCPUUtilization", 70, ABSENT),
        ("app-scaling-policy-memory", "ECSServiceAverageMemoryUtilization", 75, ABSENT),
        ("app-scaling-policy-requests", "ALBRequestCountPerTarget", 1000, f"{alb}/{group}"),
    ]
    for name, metric, target, label in expected:
        template.has_resource_properties(
            POLICY,
            {
                "name": name,
                "targetTrackingScalingPolicyConfiguration": {
                    "targetValue": target,
                    "predefinedMetricSpecification": {
                        "predefinedMetricType": metric,
                        "resourceLabel": label,
                    },
                    "scaleInCooldown": 600,
                    "scaleOutCooldown": 30,
                },
            },
        )
