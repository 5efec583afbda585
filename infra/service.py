"""One Fargate service: task definition (seed: app-api-task), its roles and logs, its tasks'
security group, and the ECS service (seed: api-production-service) behind the shared ALB.

Zero-downtime deployments: rolling by default (100 % stay healthy, up to 200 % run during the
deploy), the deployment circuit breaker (rolling only, as ECS allows) and the service's
deployment alarms both roll back a failing deployment, and `pulumi up` waits for steady state.
The traffic-shifting strategies (blue_green, canary, linear) are ECS's own, driven through the
service's two target groups and production listener rule (see infra/load_balancer.py) with a
role that lets ECS edit them.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from app.contract import HEALTH_MESSAGE_ENV, VERSION_ENV, WRITABLE_DIR
from infra.cluster import Cluster
from infra.image import ServiceImage
from infra.load_balancer import LoadBalancer
from infra.network import Network
from infra.security_groups import ServiceSecurityGroup
from infra.settings import DeploymentSettings, ServiceSettings, StackSettings

TASK_EXECUTION_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
LOAD_BALANCER_INFRASTRUCTURE_POLICY_ARN = (
    "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
)
CONTAINER_HEALTH_CHECK_INTERVAL_SECONDS = 30  # the seed's interval
_SCRATCH_VOLUME = "scratch"
_ECS_STRATEGY = {
    "rolling": "ROLLING",
    "blue_green": "BLUE_GREEN",
    "canary": "CANARY",
    "linear": "LINEAR",
}


@dataclass(frozen=True)
class FargateServiceProps:
    """Everything a service takes from the rest of the stack."""

    settings: StackSettings
    service: ServiceSettings
    cluster: Cluster
    network: Network
    load_balancer: LoadBalancer
    image: ServiceImage
    deployment_alarm_names: Sequence[pulumi.Output[str]]
    """CloudWatch alarms that fail (and roll back) a deployment when they fire during it."""


def assume_role_policy(service_principal: str, source_account: str | None = None) -> str:
    """Trust `service_principal`; with `source_account`, only on behalf of that account (the
    confused-deputy guard AWS recommends for roles ECS tasks assume)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service_principal},
        "Action": "sts:AssumeRole",
    }
    if source_account is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _role_with_managed_policy(
    logical_name: str,
    *,
    description: str,
    trust_policy: pulumi.Input[str],
    policy_arn: str,
    opts: pulumi.ResourceOptions,
) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
    """A role holding exactly one AWS-managed policy (attached as `<logical_name>-policy`).

    Whatever ECS does with the role must depend on the attachment too, not only on the role's
    ARN: otherwise it may run before the policy is attached, and outlive it on destroy."""
    role = aws.iam.Role(
        logical_name, description=description, assume_role_policy=trust_policy, opts=opts
    )
    attachment = aws.iam.RolePolicyAttachment(
        f"{logical_name}-policy", role=role.name, policy_arn=policy_arn, opts=opts
    )
    return role, attachment


def container_health_check(command: str) -> dict[str, Any]:
    """ECS container health check: the image's own checker, every 30 s, as the seed."""
    return {
        "command": ["CMD-SHELL", f"{command} || exit 1"],
        "interval": CONTAINER_HEALTH_CHECK_INTERVAL_SECONDS,
        "timeout": 5,
        "retries": 3,
        "startPeriod": 15,
    }


def deployment_configuration(
    deployment: DeploymentSettings,
) -> aws.ecs.ServiceDeploymentConfigurationArgs:
    """ECS's native deployment strategy with its bake times (pulumi-aws 7.x arguments)."""
    strategy = _ECS_STRATEGY[deployment.strategy]
    if deployment.strategy == "rolling":
        return aws.ecs.ServiceDeploymentConfigurationArgs(strategy=strategy)
    return aws.ecs.ServiceDeploymentConfigurationArgs(
        strategy=strategy,
        bake_time_in_minutes=str(deployment.bake_time_minutes),
        canary_configuration=aws.ecs.ServiceDeploymentConfigurationCanaryConfigurationArgs(
            canary_percent=deployment.canary_percent,
            canary_bake_time_in_minutes=str(deployment.canary_bake_time_minutes),
        )
        if deployment.strategy == "canary"
        else None,
        linear_configuration=aws.ecs.ServiceDeploymentConfigurationLinearConfigurationArgs(
            step_percent=deployment.linear_step_percent,
            step_bake_time_in_minutes=str(deployment.linear_step_bake_time_minutes),
        )
        if deployment.strategy == "linear"
        else None,
    )


class FargateService(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    task_definition_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(
        self, name: str, props: FargateServiceProps, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ecs-fargate-app:infra:FargateService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings, service = props.settings, props.service
        names = service.names
        account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        ecs_tasks_trust = account_id.apply(
            lambda account: assume_role_policy("ecs-tasks.amazonaws.com", account)
        )

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=names.log_group,
            retention_in_days=settings.log_retention_days,
            opts=child,
        )
        execution_role, execution_policy = _role_with_managed_policy(
            f"{name}-execution-role",
            description=f"ECS pulls the image and writes logs for {names.task_family}",
            trust_policy=ecs_tasks_trust,
            policy_arn=TASK_EXECUTION_POLICY_ARN,
            opts=child,
        )
        # The app's own AWS identity: no permissions until the app needs some.
        task_role = aws.iam.Role(
            f"{name}-task-role",
            description=f"The application in {names.task_family}; no permissions by default",
            assume_role_policy=ecs_tasks_trust,
            opts=child,
        )

        app_version = (
            pulumi.Output.from_input(settings.app_version)
            if settings.app_version is not None
            else props.image.version
        )
        container: dict[str, Any] = {
            "name": names.container,
            "image": props.image.ref,
            "essential": True,
            "portMappings": [
                {"containerPort": service.port, "hostPort": service.port, "protocol": "tcp"}
            ],
            "environment": [
                {"name": VERSION_ENV, "value": app_version},
                {"name": "PORT", "value": str(service.port)},
                {"name": "TMPDIR", "value": WRITABLE_DIR},
            ],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group.name,
                    "awslogs-region": settings.region,
                    "awslogs-stream-prefix": service.name,
                },
            },
            "stopTimeout": service.stop_timeout_seconds,
            # Nothing in the image can be changed at run time; the app writes only to
            # WRITABLE_DIR, an ephemeral task-storage volume (Fargate has no tmpfs).
            "readonlyRootFilesystem": True,
            "mountPoints": [
                {"sourceVolume": _SCRATCH_VOLUME, "containerPath": WRITABLE_DIR, "readOnly": False}
            ],
        }
        if service.health_message is not None:
            container["environment"].append(
                {"name": HEALTH_MESSAGE_ENV, "value": service.health_message}
            )
        if service.health_check_command is not None:
            container["healthCheck"] = container_health_check(service.health_check_command)
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-task-definition",
            family=names.task_family,
            cpu=str(service.cpu),
            memory=str(service.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture=service.cpu_architecture
            ),
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            container_definitions=pulumi.Output.json_dumps([container]),
            volumes=[aws.ecs.TaskDefinitionVolumeArgs(name=_SCRATCH_VOLUME)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[execution_policy]),
        )

        security_group = ServiceSecurityGroup(
            f"{name}-tasks-sg",
            props.network.vpc_id,
            props.load_balancer.security_group.id,
            service.port,
            opts=child,
        )

        targets = props.load_balancer.targets[service.name]
        advanced: aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs | None = None
        waits_for: list[pulumi.Resource] = [
            # ECS refuses a target group no listener uses yet, and a capacity provider the
            # cluster does not have yet.
            props.load_balancer.serving_listener,
            props.cluster.capacity_providers,
            # The first tasks pull with the execution role's policy.
            execution_policy,
        ]
        if targets.alternate_target_group is not None and targets.production_rule is not None:
            load_balancer_role, load_balancer_policy = _role_with_managed_policy(
                f"{name}-load-balancer-role",
                description=f"ECS shifts traffic between the target groups of {names.service}",
                # AWS's documented trust policy for this infrastructure role, as is.
                trust_policy=assume_role_policy("ecs.amazonaws.com"),
                policy_arn=LOAD_BALANCER_INFRASTRUCTURE_POLICY_ARN,
                opts=child,
            )
            advanced = aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs(
                alternate_target_group_arn=targets.alternate_target_group.arn,
                production_listener_rule=targets.production_rule.arn,
                role_arn=load_balancer_role.arn,
            )
            waits_for.append(load_balancer_policy)  # ECS shifts traffic with this policy

        deployment = service.deployment
        if targets.rule is not None:
            waits_for.append(targets.rule)
        ecs_service = aws.ecs.Service(
            name,
            name=names.service,
            cluster=props.cluster.arn,
            task_definition=task_definition.arn,
            desired_count=service.desired_count,
            capacity_provider_strategies=[
                aws.ecs.ServiceCapacityProviderStrategyArgs(
                    capacity_provider="FARGATE_SPOT" if service.spot else "FARGATE", weight=1
                )
            ],
            platform_version="LATEST",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=props.network.task_subnet_ids,
                security_groups=[security_group.id],
                assign_public_ip=props.network.assign_public_ip,
            ),
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=targets.target_group.arn,
                    container_name=names.container,
                    container_port=service.port,
                    advanced_configuration=advanced,
                )
            ],
            health_check_grace_period_seconds=deployment.health_check_grace_period_seconds,
            deployment_minimum_healthy_percent=deployment.minimum_healthy_percent,
            deployment_maximum_percent=deployment.maximum_percent,
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(
                enable=True, rollback=True
            )
            if deployment.circuit_breaker
            else None,
            deployment_configuration=deployment_configuration(deployment),
            alarms=aws.ecs.ServiceAlarmsArgs(
                alarm_names=list(props.deployment_alarm_names),
                enable=True,
                rollback=deployment.alarm_rollback,
            ),
            wait_for_steady_state=deployment.wait_for_steady_state,
            enable_execute_command=False,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=waits_for,
                # Auto scaling owns the running count; a redeploy must not reset it.
                ignore_changes=["desiredCount"],
            ),
        )

        self.service_name = ecs_service.name
        self.task_definition_arn = task_definition.arn
        self.log_group_name = log_group.name
        self.register_outputs(
            {
                "service_name": self.service_name,
                "task_definition_arn": self.task_definition_arn,
                "log_group_name": self.log_group_name,
            }
        )
