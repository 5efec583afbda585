"""Security groups: the internet reaches only the ALB; only the ALB reaches the tasks.

Rules are separate `aws.vpc.SecurityGroup*Rule` resources so the ALB group's egress and the
task group's ingress can reference each other without a dependency cycle. Groups declare no
inline rules, so the provider removes AWS's default allow-all egress.
"""

import pulumi
import pulumi_aws as aws

ANYWHERE_IPV4 = "0.0.0.0/0"


class LoadBalancerSecurityGroup(pulumi.ComponentResource):
    """The ALB's group: HTTP (and HTTPS when it has a certificate) from anywhere.

    Its egress is opened per service by ServiceSecurityGroup, to that service's port only.
    """

    id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        vpc_id: pulumi.Input[str],
        listener_ports: list[int],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecs-fargate-app:infra:LoadBalancerSecurityGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = aws.ec2.SecurityGroup(
            name, vpc_id=vpc_id, description="ALB: HTTP/HTTPS from the internet", opts=child
        )
        for port in listener_ports:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-internet-{port}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=ANYWHERE_IPV4,
                description=f"Clients on port {port}",
                opts=child,
            )
        self.id = group.id
        self.register_outputs({"id": self.id})


class ServiceSecurityGroup(pulumi.ComponentResource):
    """A service's task group: its container port from the ALB's group and nothing else.

    Egress is open because tasks pull images from ECR, ship logs to CloudWatch and may call
    other services; with public IPs (default-VPC mode) that is still outbound-only.
    """

    id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        vpc_id: pulumi.Input[str],
        load_balancer_group_id: pulumi.Input[str],
        port: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecs-fargate-app:infra:ServiceSecurityGroup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = aws.ec2.SecurityGroup(
            name, vpc_id=vpc_id, description=f"Tasks: port {port} from the ALB only", opts=child
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-alb",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            referenced_security_group_id=load_balancer_group_id,
            description="Traffic and health checks from the load balancer",
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-to-anywhere",
            security_group_id=group.id,
            ip_protocol="-1",
            cidr_ipv4=ANYWHERE_IPV4,
            description="ECR image pulls, CloudWatch Logs, outbound calls",
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-to-tasks",
            security_group_id=load_balancer_group_id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            referenced_security_group_id=group.id,
            description=f"ALB to the tasks of {name} on port {port}",
            opts=child,
        )
        self.id = group.id
        self.register_outputs({"id": self.id})
