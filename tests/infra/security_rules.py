"""Security invariants that hold on every shape of the stack: only the ALB faces the internet,
only the ALB reaches the tasks, roles hold only what they need, images are scanned, logs
expire, no shell into tasks, the registry password stays secret, and the app's root filesystem
is read-only. tests/infra/test_aws_api.py runs them on each shape it synthesizes."""

import json

from infra.mock_cloud import ACCOUNT_ID, FAKE_ECR_PASSWORD
from tests.infra.stack_template import StackTemplate

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ROLE = "aws:iam/role:Role"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def _group_ids(template: StackTemplate) -> tuple[str, set[str]]:
    groups = {group.name: group.outputs["id"] for group in template.resources(SECURITY_GROUP)}
    alb_group = groups.pop("load-balancer-sg")
    return alb_group, set(groups.values())


def check_only_the_alb_accepts_traffic_from_the_internet(template: StackTemplate) -> None:
    alb_group, _ = _group_ids(template)
    https = template.outputs["url"].startswith("https://")
    internet_ports = sorted(
        rule.inputs["fromPort"]
        for rule in template.resources(INGRESS)
        if rule.inputs.get("cidrIpv4") or rule.inputs.get("cidrIpv6")
    )
    assert internet_ports == ([80, 443] if https else [80])
    for rule in template.resources(INGRESS, {"cidrIpv4": "0.0.0.0/0"}):
        assert rule.inputs["securityGroupId"] == alb_group
        assert rule.inputs["fromPort"] == rule.inputs["toPort"]


def check_tasks_accept_only_their_port_and_only_from_the_alb(template: StackTemplate) -> None:
    alb_group, task_groups = _group_ids(template)
    service_ports = {
        service.inputs["networkConfiguration"]["securityGroups"][0]: service.inputs[
            "loadBalancers"
        ][0]["containerPort"]
        for service in template.resources("aws:ecs/service:Service")
    }
    assert set(service_ports) == task_groups
    for group in task_groups:
        rules = template.resources(INGRESS, {"securityGroupId": group})
        assert [rule.inputs for rule in rules] == [
            {
                "securityGroupId": group,
                "ipProtocol": "tcp",
                "fromPort": service_ports[group],
                "toPort": service_ports[group],
                "referencedSecurityGroupId": alb_group,
                "description": "Traffic and health checks from the load balancer",
            }
        ]


def check_the_alb_may_only_reach_the_tasks_on_their_ports(template: StackTemplate) -> None:
    alb_group, task_groups = _group_ids(template)
    egress = template.resources(EGRESS, {"securityGroupId": alb_group})
    assert {rule.inputs["referencedSecurityGroupId"] for rule in egress} == task_groups
    assert all(rule.inputs["ipProtocol"] == "tcp" for rule in egress)
    assert not any("cidrIpv4" in rule.inputs for rule in egress)
    # No inline rules anywhere: the provider then removes AWS's default allow-all egress.
    for group in template.resources(SECURITY_GROUP):
        assert "ingress" not in group.inputs and "egress" not in group.inputs


def check_roles_hold_only_what_they_need(template: StackTemplate) -> None:
    template.resource_count_is("aws:iam/rolePolicy:RolePolicy", 0)
    attachments = {a.inputs["role"]: a.inputs["policyArn"] for a in template.resources(ATTACHMENT)}
    assert len(attachments) == len(template.resources(ATTACHMENT)), "one policy per role at most"
    for role in template.resources(ROLE):
        assert "inlinePolicies" not in role.inputs and "managedPolicyArns" not in role.inputs
        trust = json.loads(role.inputs["assumeRolePolicy"])
        (statement,) = trust["Statement"]
        assert statement["Action"] == "sts:AssumeRole"
        name = role.outputs["name"]
        tasks_only = {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
        }
        if role.name.endswith("-execution-role"):
            assert statement == tasks_only
            assert attachments[name] == (
                "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
            )
        elif role.name.endswith("-task-role"):
            assert statement == tasks_only
            assert name not in attachments, "the app's role starts with no permissions"
        else:
            assert role.name.endswith("-load-balancer-role")
            assert statement["Principal"] == {"Service": "ecs.amazonaws.com"}
            assert attachments[name] == (
                "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
            )


def check_images_are_scanned_and_logs_expire(template: StackTemplate) -> None:
    repositories = template.resources("aws:ecr/repository:Repository")
    assert repositories
    for repository in repositories:
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        # Encrypted at rest either way: ECR's AES256 default or a KMS key.
        assert repository.inputs["encryptionConfigurations"][0]["encryptionType"] in {
            "AES256",
            "KMS",
        }
    log_groups = template.resources("aws:cloudwatch/logGroup:LogGroup")
    assert len(log_groups) == len(template.resources("aws:ecs/service:Service"))
    assert all(group.inputs["retentionInDays"] > 0 for group in log_groups)


def check_no_shell_into_tasks_and_the_registry_password_stays_secret(
    template: StackTemplate,
) -> None:
    for service in template.resources("aws:ecs/service:Service"):
        assert service.inputs["enableExecuteCommand"] is False
    for image in template.resources("docker:index/image:Image"):
        assert image.inputs["registry"] == "[secret]"
    everything = json.dumps(
        [resource.inputs for resource in template.evaluation.resources] + [template.outputs]
    )
    assert FAKE_ECR_PASSWORD not in everything


def check_public_ips_only_in_default_vpc_mode(template: StackTemplate) -> None:
    dedicated = bool(template.resources("awsx:ec2:Vpc"))
    for service in template.resources("aws:ecs/service:Service"):
        network = service.inputs["networkConfiguration"]
        if dedicated:
            assert network["assignPublicIp"] is False
            assert all(subnet.startswith("subnet-0private") for subnet in network["subnets"])
        else:
            assert network["assignPublicIp"] is True
            assert all(subnet.startswith("subnet-0public") for subnet in network["subnets"])
    alb = template.resource("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["internal"] is False
    assert all(subnet.startswith("subnet-0public") for subnet in alb.inputs["subnets"])


def check_the_root_filesystem_is_read_only_with_one_writable_scratch_dir(
    template: StackTemplate,
) -> None:
    tasks = template.resources("aws:ecs/taskDefinition:TaskDefinition")
    assert tasks
    for task in tasks:
        (container,) = json.loads(task.inputs["containerDefinitions"])
        assert container["readonlyRootFilesystem"] is True, task.name
        # One task-storage volume (no host path: Fargate ephemeral storage), at /tmp only.
        (volume,) = task.inputs["volumes"]
        assert set(volume) == {"name"}
        assert container["mountPoints"] == [
            {"sourceVolume": volume["name"], "containerPath": "/tmp", "readOnly": False}
        ]
        assert {"name": "TMPDIR", "value": "/tmp"} in container["environment"]


SECURITY_CHECKS = (
    check_only_the_alb_accepts_traffic_from_the_internet,
    check_tasks_accept_only_their_port_and_only_from_the_alb,
    check_the_alb_may_only_reach_the_tasks_on_their_ports,
    check_roles_hold_only_what_they_need,
    check_images_are_scanned_and_logs_expire,
    check_no_shell_into_tasks_and_the_registry_password_stays_secret,
    check_public_ips_only_in_default_vpc_mode,
    check_the_root_filesystem_is_read_only_with_one_writable_scratch_dir,
)
