"""Target-tracking auto scaling of a service's task count (seed: app-scaling-policy, 2-10
tasks at 70 % CPU), with optional memory and requests-per-task policies.

Several target-tracking policies on one service scale out when any asks to and in only when
all agree. Scale-out reacts after 60 s, scale-in waits 300 s so a brief lull does not drop
capacity that the next burst needs.
"""

import pulumi
import pulumi_aws as aws

from infra.settings import ServiceSettings

SCALABLE_DIMENSION = "ecs:service:DesiredCount"


class ServiceScaling(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        service: ServiceSettings,
        cluster_name: pulumi.Input[str],
        service_name: pulumi.Input[str],
        request_count_label: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`request_count_label` is `<alb arn suffix>/<target group arn suffix>`."""
        super().__init__("ecs-fargate-app:infra:ServiceScaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        scaling = service.scaling
        target = aws.appautoscaling.Target(
            f"{name}-target",
            service_namespace="ecs",
            scalable_dimension=SCALABLE_DIMENSION,
            resource_id=pulumi.Output.concat("service/", cluster_name, "/", service_name),
            min_capacity=service.min_count,
            max_capacity=service.max_count,
            opts=child,
        )

        def target_tracking(
            suffix: str,
            policy_name: str,
            metric: str,
            target_value: float,
            resource_label: pulumi.Input[str] | None = None,
        ) -> None:
            aws.appautoscaling.Policy(
                f"{name}-{suffix}",
                name=policy_name,
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    target_value=target_value,
                    predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type=metric, resource_label=resource_label
                    ),
                    scale_in_cooldown=scaling.scale_in_cooldown_seconds,
                    scale_out_cooldown=scaling.scale_out_cooldown_seconds,
                ),
                opts=child,
            )

        target_tracking(
            "cpu-policy",
            scaling.policy_name,
            "ECSServiceAverageCPUUtilization",
            scaling.cpu_target_percent,
        )
        if scaling.memory_target_percent is not None:
            target_tracking(
                "memory-policy",
                f"{scaling.policy_name}-memory",
                "ECSServiceAverageMemoryUtilization",
                scaling.memory_target_percent,
            )
        if scaling.requests_per_target is not None:
            target_tracking(
                "requests-policy",
                f"{scaling.policy_name}-requests",
                "ALBRequestCountPerTarget",
                scaling.requests_per_target,
                resource_label=request_count_label,
            )
        self.register_outputs({})
