"""Pulumi.prod.yaml declares the seed guide's stack, value for value.

Prod is evaluated once and checked part by part (repository, image, cluster, task, service,
load balancer, scaling, outputs), each part a subtest that passes or fails on its own."""

import json

import pytest

from app.contract import HEALTH_CHECK_COMMAND
from infra.mock_cloud import ACCOUNT_ID, FAKE_ECR_PASSWORD
from tests.infra.stack_template import ABSENT, StackTemplate, Synth, array_with, json_of

ECR_URL = f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/my-application-api"
DIGEST_REF = rf"{ECR_URL}@sha256:"


def ecr_repository_is_the_seeds_private_scanned_immutable_encrypted_repo(
    template: StackTemplate,
) -> None:
    repository = template.has_resource_properties(
        "aws:ecr/repository:Repository",
        {
            "name": "my-application-api",
            "imageScanningConfiguration": {"scanOnPush": True},
            "imageTagMutability": "IMMUTABLE",
            "encryptionConfigurations": [{"encryptionType": "AES256"}],
            "forceDelete": False,
        },
    )
    policy = template.resource("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert policy.inputs["repository"] == repository.outputs["name"]
    rules = json.loads(policy.inputs["policy"])["rules"]
    assert [rule["selection"] for rule in rules] == [
        {
            "tagStatus": "untagged",
            "countType": "sinceImagePushed",
            "countUnit": "days",
            "countNumber": 7,
        },
        {
            "tagStatus": "tagged",
            "tagPatternList": ["*"],
            "countType": "imageCountMoreThan",
            "countNumber": 30,
        },
    ]
    assert template.outputs["ecr_repository_url"] == ECR_URL


def test_an_operator_can_let_tags_be_overwritten(synth: Synth) -> None:
    """ECR CreateRepository: MUTABLE "will allow image tags to be overwritten"."""
    template = synth("prod", {"registry": {"immutableTags": False}})
    repository = template.resource("aws:ecr/repository:Repository")
    assert repository.inputs["imageTagMutability"] == "MUTABLE"


def image_is_built_for_arm64_and_pushed_with_an_ecr_token(template: StackTemplate) -> None:
    image = template.has_resource_properties(
        "docker:index/image:Image",
        {
            "build": {"context": "app", "dockerfile": "app/Dockerfile", "platform": "linux/arm64"},
            "registry": "[secret]",  # the ECR password never appears in plain text
            "skipPush": False,
        },
    )
    assert image.inputs["imageName"].startswith(f"{ECR_URL}:build-")
    assert image.depends_on == ("api-registry",)
    # Behind the secret: docker logs in to the repository's registry as ECR's user "AWS" with
    # the password GetAuthorizationToken answered (`docker login --username AWS`, ECR guide).
    assert image.secret_inputs["registry"] == {
        "server": ECR_URL,
        "username": "AWS",
        "password": FAKE_ECR_PASSWORD,
    }
    # The token is asked of the registry that holds the repository (GetAuthorizationToken's
    # registryIds), not whatever registry the caller's account defaults to.
    repository = template.resource("aws:ecr/repository:Repository")
    token_requests = [
        invoke.args
        for invoke in template.evaluation.invokes
        if invoke.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken"
    ]
    assert token_requests == [{"registryId": repository.outputs["registryId"]}]


def cluster_is_the_seeds_fargate_cluster_with_container_insights(template: StackTemplate) -> None:
    template.has_resource_properties(
        "aws:ecs/cluster:Cluster",
        {
            "name": "production-app-cluster",
            "settings": [{"name": "containerInsights", "value": "enabled"}],
        },
    )
    template.has_resource_properties(
        "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders",
        {
            "clusterName": "production-app-cluster",
            "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "defaultCapacityProviderStrategies": [{"capacityProvider": "FARGATE", "weight": 1}],
        },
    )
    assert template.outputs["cluster_name"] == "production-app-cluster"


def task_definition_is_the_seeds_app_api_task_with_its_own_roles(template: StackTemplate) -> None:
    image_ref = template.outputs["image"]
    assert image_ref.startswith(DIGEST_REF)
    template.has_resource_properties(
        "aws:ecs/taskDefinition:TaskDefinition",
        {
            "family": "app-api-task",
            "cpu": "1024",
            "memory": "3072",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
            "containerDefinitions": json_of(
                [
                    {
                        "name": "app-api-container",
                        "image": image_ref,
                        "essential": True,
                        "portMappings": [
                            {"containerPort": 8000, "hostPort": 8000, "protocol": "tcp"}
                        ],
                        "healthCheck": {
                            "command": ["CMD-SHELL", f"{HEALTH_CHECK_COMMAND} || exit 1"],
                            "interval": 30,
                        },
                        "logConfiguration": {
                            "logDriver": "awslogs",
                            "options": {
                                "awslogs-group": "/ecs/app-api-task",
                                "awslogs-region": "us-east-1",
                                "awslogs-stream-prefix": "api",
                            },
                        },
                        "stopTimeout": 30,
                        "environment": array_with(
                            {"name": "APP_VERSION", "value": image_ref.split("@", 1)[1]},
                            {"name": "PORT", "value": "8000"},
                        ),
                    }
                ]
            ),
        },
    )
    template.has_resource_properties(
        "aws:cloudwatch/logGroup:LogGroup", {"name": "/ecs/app-api-task", "retentionInDays": 30}
    )
    # Separate roles: ECS's (pull the image, write logs) and the app's own.
    task = template.resource("aws:ecs/taskDefinition:TaskDefinition")
    execution = template.resource("aws:iam/role:Role", "api-execution-role")
    task_role = template.resource("aws:iam/role:Role", "api-task-role")
    assert task.inputs["executionRoleArn"] == execution.outputs["arn"]
    assert task.inputs["taskRoleArn"] == task_role.outputs["arn"]
    assert execution.outputs["arn"] != task_role.outputs["arn"]


def service_is_the_seeds_api_production_service(template: StackTemplate) -> None:
    task = template.resource("aws:ecs/taskDefinition:TaskDefinition")
    cluster = template.resource("aws:ecs/cluster:Cluster")
    target_group = template.resource("aws:lb/targetGroup:TargetGroup")
    service = template.has_resource_properties(
        "aws:ecs/service:Service",
        {
            "name": "api-production-service",
            "cluster": cluster.outputs["arn"],
            "taskDefinition": task.outputs["arn"],
            "desiredCount": 2,
            "capacityProviderStrategies": [{"capacityProvider": "FARGATE", "weight": 1}],
            "deploymentMinimumHealthyPercent": 100,
            "deploymentMaximumPercent": 200,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "deploymentConfiguration": {"strategy": "ROLLING", "bakeTimeInMinutes": ABSENT},
            "healthCheckGracePeriodSeconds": 60,
            "waitForSteadyState": True,
            "alarms": {
                "enable": True,
                "rollback": True,
                "alarmNames": [
                    "api-production-service-target-5xx",
                    "api-production-service-unhealthy-hosts",
                    "api-production-service-p99-latency",
                ],
            },
            "loadBalancers": [
                {
                    "targetGroupArn": target_group.outputs["arn"],
                    "containerName": "app-api-container",
                    "containerPort": 8000,
                    "advancedConfiguration": ABSENT,
                }
            ],
            "networkConfiguration": {"assignPublicIp": True},
            "enableExecuteCommand": False,
        },
    )
    # Auto scaling owns the count: a redeploy must not reset it to 2.
    assert service.ignore_changes == ("desiredCount",)
    # ECS refuses a target group no listener uses, or a provider the cluster lacks, yet.
    assert {"load-balancer-http", "cluster-capacity-providers"} <= set(service.depends_on)
    for alarm_name in service.inputs["alarms"]["alarmNames"]:
        template.has_resource_properties(
            "aws:cloudwatch/metricAlarm:MetricAlarm", {"name": alarm_name}
        )


def load_balancer_is_the_seeds_internet_facing_alb_on_port_80(template: StackTemplate) -> None:
    alb = template.has_resource_properties(
        "aws:lb/loadBalancer:LoadBalancer",
        {
            "name": "app-production-lb",
            "internal": False,
            "loadBalancerType": "application",
            "enableDeletionProtection": True,
            "dropInvalidHeaderFields": True,
            "subnets": ["subnet-0publica", "subnet-0publicb", "subnet-0publicc"],
        },
    )
    target_group = template.has_resource_properties(
        "aws:lb/targetGroup:TargetGroup",
        {
            "name": "app-api-target-group",
            "targetType": "ip",
            "port": 8000,
            "protocol": "HTTP",
            "vpcId": "vpc-0default",
            "deregistrationDelay": 30,
            "healthCheck": {
                "enabled": True,
                "path": "/health",
                "matcher": "200",
                "interval": 10,
                "timeout": 5,
                "healthyThreshold": 2,
                "unhealthyThreshold": 3,
            },
        },
    )
    template.resource_count_is("aws:lb/listener:Listener", 1)
    template.has_resource_properties(
        "aws:lb/listener:Listener",
        {
            "loadBalancerArn": alb.outputs["arn"],
            "port": 80,
            "protocol": "HTTP",
            "defaultActions": [{"type": "forward", "targetGroupArn": target_group.outputs["arn"]}],
        },
    )
    template.resource_count_is("aws:lb/listenerRule:ListenerRule", 0)
    template.resource("awsx:ec2:DefaultVpc")  # seed: "Networking: Default VPC"
    template.resource_count_is("awsx:ec2:Vpc", 0)
    dns_name = alb.outputs["dnsName"]
    assert template.outputs["alb_dns_name"] == dns_name
    assert template.outputs["url"] == f"http://{dns_name}"


def auto_scaling_is_the_seeds_app_scaling_policy(template: StackTemplate) -> None:
    target = template.has_resource_properties(
        "aws:appautoscaling/target:Target",
        {
            "serviceNamespace": "ecs",
            "scalableDimension": "ecs:service:DesiredCount",
            "resourceId": "service/production-app-cluster/api-production-service",
            "minCapacity": 2,
            "maxCapacity": 10,
        },
    )
    template.resource_count_is("aws:appautoscaling/policy:Policy", 1)
    template.has_resource_properties(
        "aws:appautoscaling/policy:Policy",
        {
            "name": "app-scaling-policy",
            "policyType": "TargetTrackingScaling",
            "resourceId": target.inputs["resourceId"],
            "targetTrackingScalingPolicyConfiguration": {
                "targetValue": 70,
                "predefinedMetricSpecification": {
                    "predefinedMetricType": "ECSServiceAverageCPUUtilization"
                },
                "scaleInCooldown": 300,
                "scaleOutCooldown": 60,
            },
        },
    )


def stack_outputs_name_each_service_its_log_group_and_task_definition(
    template: StackTemplate,
) -> None:
    task = template.resource("aws:ecs/taskDefinition:TaskDefinition")
    assert set(template.outputs) == {
        "url",
        "alb_dns_name",
        "ecr_repository_url",
        "image",
        "cluster_name",
        "services",
    }
    assert template.outputs["services"] == {
        "api": {
            "name": "api-production-service",
            "log_group": "/ecs/app-api-task",
            "task_definition_arn": task.outputs["arn"],
            "image": template.outputs["image"],
            "ecr_repository_url": ECR_URL,
        }
    }


SEED_PARTS = (
    ecr_repository_is_the_seeds_private_scanned_immutable_encrypted_repo,
    image_is_built_for_arm64_and_pushed_with_an_ecr_token,
    cluster_is_the_seeds_fargate_cluster_with_container_insights,
    task_definition_is_the_seeds_app_api_task_with_its_own_roles,
    service_is_the_seeds_api_production_service,
    load_balancer_is_the_seeds_internet_facing_alb_on_port_80,
    auto_scaling_is_the_seeds_app_scaling_policy,
    stack_outputs_name_each_service_its_log_group_and_task_definition,
)


def test_prod_is_the_seeds_stack(synth: Synth, subtests: pytest.Subtests) -> None:
    template = synth("prod")
    for part in SEED_PARTS:
        with subtests.test(part.__name__):
            part(template)
