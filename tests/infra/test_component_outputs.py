"""What each component shows the engine (`register_outputs`): `pulumi stack --show-urns` and the
service's resource view list these, so each must be the child's real value under its name."""

from tests.infra.stack_template import StackTemplate, Synth


def _output(template: StackTemplate, resource_type: str, key: str) -> object:
    return template.resource(resource_type).outputs[key]


def test_each_component_registers_its_childrens_values(synth: Synth) -> None:
    template = synth("prod")
    alb_dns = _output(template, "aws:lb/loadBalancer:LoadBalancer", "dnsName")
    groups = {
        group.name: group.outputs["id"]
        for group in template.resources("aws:ec2/securityGroup:SecurityGroup")
    }
    expected = {
        "network": {"vpc_id": _output(template, "awsx:ec2:DefaultVpc", "vpcId")},
        "cluster": {"name": _output(template, "aws:ecs/cluster:Cluster", "name")},
        "api-registry": {
            "repository_url": _output(template, "aws:ecr/repository:Repository", "repositoryUrl")
        },
        "api-image": {"ref": template.outputs["image"]},
        "load-balancer": {"dns_name": alb_dns, "url": f"http://{alb_dns}"},
        "load-balancer-sg": {"id": groups["load-balancer-sg"]},
        "api-tasks-sg": {"id": groups["api-tasks-sg"]},
        "load-balancer-access-logs": {
            "bucket": _output(template, "aws:s3/bucket:Bucket", "bucket")
        },
        "api": {
            "service_name": _output(template, "aws:ecs/service:Service", "name"),
            "task_definition_arn": _output(
                template, "aws:ecs/taskDefinition:TaskDefinition", "arn"
            ),
            "log_group_name": _output(template, "aws:cloudwatch/logGroup:LogGroup", "name"),
        },
        # Alarms, dashboards and scaling policies are reached through their own names.
        "monitoring": {},
        "api-scaling": {},
    }
    assert template.evaluation.component_outputs == expected
