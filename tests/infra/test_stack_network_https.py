"""Networking modes (the seed's default VPC, or a dedicated one) and HTTPS on the ALB."""

from tests.infra.stack_template import ABSENT, Synth

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-1111-2222-333344445555"
LISTENER = "aws:lb/listener:Listener"


def test_dedicated_vpc_puts_tasks_in_private_subnets(synth: Synth) -> None:
    network = {"mode": "dedicated", "cidrBlock": "10.20.0.0/16", "availabilityZones": 3}
    template = synth("prod", {"network": {**network, "natGateways": "one_per_az"}})
    template.resource_count_is("awsx:ec2:DefaultVpc", 0)
    vpc = template.has_resource_properties(
        "awsx:ec2:Vpc",
        {
            "cidrBlock": "10.20.0.0/16",
            "numberOfAvailabilityZones": 3,
            "natGateways": {"strategy": "OnePerAz"},
            "enableDnsHostnames": True,
        },
    )
    # "You can only enable DNS hostnames if you've enabled DNS support" (EC2 ModifyVpcAttribute),
    # and the tasks find ECR and CloudWatch by name; unset, a new VPC has DNS support on.
    assert vpc.inputs.get("enableDnsSupport", True) is True
    assert vpc.path == ("network", "network-vpc")  # its URN: moved elsewhere, it is replaced
    template.has_resource_properties(
        "aws:lb/loadBalancer:LoadBalancer",
        {"subnets": ["subnet-0publica", "subnet-0publicb", "subnet-0publicc"]},
    )
    template.has_resource_properties(
        "aws:ecs/service:Service",
        {
            "networkConfiguration": {
                "assignPublicIp": False,
                "subnets": ["subnet-0privatea", "subnet-0privateb", "subnet-0privatec"],
            }
        },
    )
    template.has_resource_properties("aws:lb/targetGroup:TargetGroup", {"vpcId": "vpc-0dedicated"})


def test_a_certificate_turns_on_https_and_redirects_http(synth: Synth) -> None:
    template = synth("prod", {"loadBalancer": {"certificateArn": CERTIFICATE}})
    target_group = template.resource("aws:lb/targetGroup:TargetGroup")
    template.resource_count_is(LISTENER, 2)
    template.has_resource_properties(
        LISTENER,
        {
            "port": 443,
            "protocol": "HTTPS",
            "certificateArn": CERTIFICATE,
            "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "defaultActions": [{"type": "forward", "targetGroupArn": target_group.outputs["arn"]}],
        },
    )
    template.has_resource_properties(
        LISTENER,
        {
            "port": 80,
            "protocol": "HTTP",
            "certificateArn": ABSENT,
            "defaultActions": [
                {
                    "type": "redirect",
                    "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"},
                }
            ],
        },
    )
    alb = template.resource("aws:lb/loadBalancer:LoadBalancer")
    assert template.outputs["url"] == f"https://{alb.outputs['dnsName']}"
    service = template.resource("aws:ecs/service:Service")
    assert "load-balancer-https" in service.depends_on
