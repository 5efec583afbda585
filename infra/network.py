"""Where the stack runs: the account's default VPC (the seed's choice) or a dedicated one.

awsx builds the VPC (the only awsx component in the stack). Under Pulumi's mocks awsx
components are opaque: the mock sees one `awsx:ec2:*` resource and supplies its outputs.
"""

from collections.abc import Sequence

import pulumi
import pulumi_awsx as awsx

from infra.settings import NetworkSettings

_NAT_STRATEGY = {
    "single": awsx.ec2.NatGatewayStrategy.SINGLE,
    "one_per_az": awsx.ec2.NatGatewayStrategy.ONE_PER_AZ,
}


class Network(pulumi.ComponentResource):
    """Subnets for the load balancer and for the tasks, and whether tasks get public IPs.

    - `default` mode: every subnet of the default VPC is public, so tasks get a public IP to
      reach ECR and CloudWatch without a NAT gateway; their security group still admits
      traffic only from the load balancer.
    - `dedicated` mode: a new VPC over `availability_zones` AZs; the ALB in public subnets,
      tasks in private subnets without public IPs, egress through NAT gateway(s).
    """

    vpc_id: pulumi.Output[str]
    load_balancer_subnet_ids: pulumi.Output[Sequence[str]]
    task_subnet_ids: pulumi.Output[Sequence[str]]
    assign_public_ip: bool

    def __init__(
        self, name: str, settings: NetworkSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ecs-fargate-app:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if settings.mode == "default":
            default_vpc = awsx.ec2.DefaultVpc(f"{name}-default-vpc", opts=child)
            self.vpc_id = default_vpc.vpc_id
            self.load_balancer_subnet_ids = default_vpc.public_subnet_ids
            self.task_subnet_ids = default_vpc.public_subnet_ids
            self.assign_public_ip = True
        else:
            vpc = awsx.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=settings.cidr_block,
                number_of_availability_zones=settings.availability_zones,
                nat_gateways=awsx.ec2.NatGatewayConfigurationArgs(
                    strategy=_NAT_STRATEGY[settings.nat_gateways]
                ),
                enable_dns_hostnames=True,
                enable_dns_support=True,
                opts=child,
            )
            self.vpc_id = vpc.vpc_id
            self.load_balancer_subnet_ids = vpc.public_subnet_ids
            self.task_subnet_ids = vpc.private_subnet_ids
            self.assign_public_ip = False
        self.register_outputs({"vpc_id": self.vpc_id})
