"""CloudWatch alarms and dashboard; alarms notify an SNS topic of the stack's own (with email
subscriptions) or an existing one (`monitoring.alarmTopicArn`).

Per service: target 5xx, unhealthy hosts and p99 response time (these three are also the
service's deployment alarms: firing during a deployment rolls it back), CPU and memory (not
deployment alarms: a busy deploy is a scaling signal, not a bad release). For the ALB: its own
5xx. A service on a traffic-shifting strategy serves from two target groups in turn, so its
target-group alarms combine both with metric math.

Alarms are declared before the services (their names come from settings), so each service can
reference its deployment alarms when it is created.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from infra.load_balancer import LoadBalancer
from infra.settings import ServiceSettings, StackSettings

PERIOD_SECONDS = 60
ALB_NAMESPACE = "AWS/ApplicationELB"
ECS_NAMESPACE = "AWS/ECS"

Combine = Literal["SUM", "MAX"]


class Monitoring(pulumi.ComponentResource):
    deployment_alarm_names: dict[str, list[pulumi.Output[str]]]
    """Per service name, the alarms that roll a deployment back."""
    topic_arn: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        settings: StackSettings,
        load_balancer: LoadBalancer,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecs-fargate-app:infra:Monitoring", name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        self._load_balancer = load_balancer
        monitoring = settings.monitoring

        self.topic_arn = (
            None
            if monitoring.alarm_topic_arn is None
            else pulumi.Output.from_input(monitoring.alarm_topic_arn)
        )
        if monitoring.creates_topic:
            topic = aws.sns.Topic(
                f"{name}-alarm-topic", name=f"app-{settings.environment}-alarms", opts=self._child
            )
            for index, email in enumerate(monitoring.alarm_emails):
                aws.sns.TopicSubscription(
                    f"{name}-alarm-email-{index}",
                    topic=topic.arn,
                    protocol="email",
                    endpoint=email,
                    opts=self._child,
                )
            self.topic_arn = topic.arn
        self._actions: list[pulumi.Output[str]] = (
            [self.topic_arn] if self.topic_arn is not None else []
        )

        alarms: list[aws.cloudwatch.MetricAlarm] = [
            self._metric_alarm(
                f"{name}-load-balancer-5xx",
                alarm_name=f"{settings.load_balancer_name}-5xx",
                description="The load balancer itself answers 5xx (no healthy target, timeouts)",
                namespace=ALB_NAMESPACE,
                metric="HTTPCode_ELB_5XX_Count",
                dimensions={"LoadBalancer": load_balancer.arn_suffix},
                statistic="Sum",
                threshold=monitoring.load_balancer_5xx_per_minute,
                evaluation_periods=3,
                datapoints_to_alarm=2,
            )
        ]
        self.deployment_alarm_names = {}
        for service in settings.services:
            deployment_alarms, other_alarms = self._service_alarms(settings, service)
            alarms.extend(deployment_alarms + other_alarms)
            self.deployment_alarm_names[service.name] = [alarm.name for alarm in deployment_alarms]

        if monitoring.dashboard:
            aws.cloudwatch.Dashboard(
                f"{name}-dashboard",
                dashboard_name=f"app-{settings.environment}",
                dashboard_body=pulumi.Output.json_dumps(
                    {"widgets": self._widgets(settings, [alarm.arn for alarm in alarms])}
                ),
                opts=self._child,
            )
        self.register_outputs({})

    def _service_alarms(
        self, settings: StackSettings, service: ServiceSettings
    ) -> tuple[list[aws.cloudwatch.MetricAlarm], list[aws.cloudwatch.MetricAlarm]]:
        """The service's deployment alarms, and its other alarms."""
        monitoring = settings.monitoring
        names = service.names
        targets = self._load_balancer.targets[service.name]
        target_groups = [targets.target_group.arn_suffix]
        if targets.alternate_target_group is not None:
            target_groups.append(targets.alternate_target_group.arn_suffix)
        ecs_dimensions = {"ClusterName": settings.cluster_name, "ServiceName": names.service}
        prefix = f"{service.name}-alarm"
        deployment_alarms = [
            self._target_group_alarm(
                f"{prefix}-target-5xx",
                alarm_name=f"{names.service}-target-5xx",
                description=f"{names.service} answers 5xx",
                metric="HTTPCode_Target_5XX_Count",
                statistic="Sum",
                combine="SUM",
                target_groups=target_groups,
                threshold=monitoring.target_5xx_per_minute,
                evaluation_periods=3,
                datapoints_to_alarm=2,
            ),
            self._target_group_alarm(
                f"{prefix}-unhealthy-hosts",
                alarm_name=f"{names.service}-unhealthy-hosts",
                description=f"Tasks of {names.service} fail the load balancer health check",
                metric="UnHealthyHostCount",
                statistic="Maximum",
                combine="MAX",
                target_groups=target_groups,
                threshold=0,
                evaluation_periods=3,
                datapoints_to_alarm=3,
            ),
            self._target_group_alarm(
                f"{prefix}-p99-latency",
                alarm_name=f"{names.service}-p99-latency",
                description=f"99th percentile response time of {names.service} is high",
                metric="TargetResponseTime",
                statistic="p99",
                combine="MAX",
                target_groups=target_groups,
                threshold=monitoring.p99_latency_seconds,
                evaluation_periods=5,
                datapoints_to_alarm=3,
            ),
        ]
        capacity_alarms = [
            self._metric_alarm(
                f"{prefix}-cpu",
                alarm_name=f"{names.service}-cpu-high",
                description=f"{names.service} CPU stays high (scaling at its limit?)",
                namespace=ECS_NAMESPACE,
                metric="CPUUtilization",
                dimensions=ecs_dimensions,
                statistic="Average",
                threshold=monitoring.cpu_alarm_percent,
                evaluation_periods=5,
                datapoints_to_alarm=3,
            ),
            self._metric_alarm(
                f"{prefix}-memory",
                alarm_name=f"{names.service}-memory-high",
                description=f"{names.service} memory stays high",
                namespace=ECS_NAMESPACE,
                metric="MemoryUtilization",
                dimensions=ecs_dimensions,
                statistic="Average",
                threshold=monitoring.memory_alarm_percent,
                evaluation_periods=5,
                datapoints_to_alarm=3,
            ),
        ]
        return deployment_alarms, capacity_alarms

    def _metric_alarm(
        self,
        logical_name: str,
        *,
        alarm_name: str,
        description: str,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, pulumi.Input[str]],
        statistic: str,
        threshold: float,
        evaluation_periods: int,
        datapoints_to_alarm: int,
    ) -> aws.cloudwatch.MetricAlarm:
        percentile = statistic.startswith("p")
        return self._alarm(
            logical_name,
            alarm_name=alarm_name,
            description=description,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            namespace=namespace,
            metric_name=metric,
            dimensions=dimensions,
            statistic=None if percentile else statistic,
            extended_statistic=statistic if percentile else None,
            period=PERIOD_SECONDS,
        )

    def _alarm(
        self,
        logical_name: str,
        *,
        alarm_name: str,
        description: str,
        threshold: float,
        evaluation_periods: int,
        datapoints_to_alarm: int,
        **metric: Any,
    ) -> aws.cloudwatch.MetricAlarm:
        """What every alarm here shares: above the threshold alarms, missing data is fine."""
        return aws.cloudwatch.MetricAlarm(
            logical_name,
            name=alarm_name,
            alarm_description=description,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            threshold=threshold,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=self._actions,
            ok_actions=self._actions,
            opts=self._child,
            **metric,
        )

    def _target_group_alarm(
        self,
        logical_name: str,
        *,
        alarm_name: str,
        description: str,
        metric: str,
        statistic: str,
        combine: Combine,
        target_groups: Sequence[pulumi.Output[str]],
        threshold: float,
        evaluation_periods: int,
        datapoints_to_alarm: int,
    ) -> aws.cloudwatch.MetricAlarm:
        """An alarm on a target-group metric; over two groups it is `combine` of both."""
        lb_suffix = self._load_balancer.arn_suffix
        if len(target_groups) == 1:
            return self._metric_alarm(
                logical_name,
                alarm_name=alarm_name,
                description=description,
                namespace=ALB_NAMESPACE,
                metric=metric,
                dimensions={"LoadBalancer": lb_suffix, "TargetGroup": target_groups[0]},
                statistic=statistic,
                threshold=threshold,
                evaluation_periods=evaluation_periods,
                datapoints_to_alarm=datapoints_to_alarm,
            )
        queries = [
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=f"m{index}",
                return_data=False,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=ALB_NAMESPACE,
                    metric_name=metric,
                    dimensions={"LoadBalancer": lb_suffix, "TargetGroup": target_group},
                    stat=statistic,
                    period=PERIOD_SECONDS,
                ),
            )
            for index, target_group in enumerate(target_groups)
        ]
        ids = ", ".join(f"m{index}" for index in range(len(target_groups)))
        queries.append(
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id="combined",
                expression=f"{combine}([{ids}])",
                label=f"{metric} ({combine.lower()} of both target groups)",
                return_data=True,
            )
        )
        return self._alarm(
            logical_name,
            alarm_name=alarm_name,
            description=description,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            metric_queries=queries,
        )

    def _widgets(
        self, settings: StackSettings, alarm_arns: list[pulumi.Output[str]]
    ) -> list[dict[str, Any]]:
        lb_suffix = self._load_balancer.arn_suffix
        widgets: list[dict[str, Any]] = [
            _widget(
                0,
                0,
                "alarm",
                {"title": "Alarms", "alarms": alarm_arns},
                width=24,
                height=3,
            )
        ]
        for row, service in enumerate(settings.services):
            y = 3 + row * 6
            service_name = service.names.service
            group = self._load_balancer.targets[service.name].target_group.arn_suffix
            ecs = ["ClusterName", settings.cluster_name, "ServiceName", service_name]
            alb = ["TargetGroup", group, "LoadBalancer", lb_suffix]
            charts: list[tuple[str, list[list[Any]]]] = [
                (
                    f"{service_name}: CPU and memory (%)",
                    [
                        [ECS_NAMESPACE, "CPUUtilization", *ecs],
                        [ECS_NAMESPACE, "MemoryUtilization", *ecs],
                    ],
                ),
                (
                    f"{service_name}: requests and 5xx per minute",
                    [
                        [ALB_NAMESPACE, "RequestCount", *alb, {"stat": "Sum"}],
                        [ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", *alb, {"stat": "Sum"}],
                    ],
                ),
                (
                    f"{service_name}: p99 response time (s) and healthy tasks",
                    [
                        [ALB_NAMESPACE, "TargetResponseTime", *alb, {"stat": "p99"}],
                        [ALB_NAMESPACE, "HealthyHostCount", *alb, {"yAxis": "right"}],
                    ],
                ),
            ]
            for column, (title, metrics) in enumerate(charts):
                widgets.append(
                    _widget(
                        column * 8,
                        y,
                        "metric",
                        {
                            "title": title,
                            "region": settings.region,
                            "period": PERIOD_SECONDS,
                            "stat": "Average",
                            "view": "timeSeries",
                            "metrics": metrics,
                        },
                    )
                )
        return widgets


def _widget(
    x: int, y: int, kind: str, properties: dict[str, Any], *, width: int = 8, height: int = 6
) -> dict[str, Any]:
    return {
        "type": kind,
        "x": x,
        "y": y,
        "width": width,
        "height": height,
        "properties": properties,
    }
