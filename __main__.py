"""The seed's stack on ECS Fargate, top to bottom: network, cluster, load balancer, alarms,
then per service its ECR repository, image, tasks and auto scaling. Config: Pulumi.<stack>.yaml
(see infra/settings.py); offline view: `python -m infra.synth <stack>`."""

import pulumi

from infra.cluster import Cluster
from infra.image import ServiceImage
from infra.load_balancer import LoadBalancer
from infra.monitoring import Monitoring
from infra.network import Network
from infra.preflight import check_deploy_prerequisites
from infra.registry import Registry
from infra.scaling import ServiceScaling
from infra.service import FargateService, FargateServiceProps
from infra.settings import load_settings

settings = load_settings()  # bad config stops here, before any resource
check_deploy_prerequisites(settings)

network = Network("network", settings.network)
cluster = Cluster("cluster", settings)
load_balancer = LoadBalancer("load-balancer", settings, network)
monitoring = Monitoring("monitoring", settings, load_balancer)

exported: dict[str, dict[str, pulumi.Output[str]]] = {}
for service in settings.services:
    registry = Registry(f"{service.name}-registry", service.names.repository, settings.registry)
    image = ServiceImage(f"{service.name}-image", service, registry)
    fargate = FargateService(
        service.name,
        FargateServiceProps(
            settings=settings,
            service=service,
            cluster=cluster,
            network=network,
            load_balancer=load_balancer,
            image=image,
            deployment_alarm_names=monitoring.deployment_alarm_names[service.name],
        ),
    )
    ServiceScaling(
        f"{service.name}-scaling",
        service,
        cluster.name,
        fargate.service_name,
        request_count_label=pulumi.Output.concat(
            load_balancer.arn_suffix,
            "/",
            load_balancer.targets[service.name].target_group.arn_suffix,
        ),
    )
    exported[service.name] = {
        "name": fargate.service_name,
        "log_group": fargate.log_group_name,
        "task_definition_arn": fargate.task_definition_arn,
        "image": image.ref,
        "ecr_repository_url": registry.repository_url,
    }

first = exported[settings.services[0].name]
pulumi.export("url", load_balancer.url)
pulumi.export("alb_dns_name", load_balancer.dns_name)
pulumi.export("ecr_repository_url", first["ecr_repository_url"])
pulumi.export("image", first["image"])
pulumi.export("cluster_name", cluster.name)
pulumi.export("services", exported)
