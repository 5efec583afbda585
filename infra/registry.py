"""The private ECR repository a service's images live in (seed: my-application-api)."""

import json

import pulumi
import pulumi_aws as aws

from infra.settings import RegistrySettings


def lifecycle_policy(settings: RegistrySettings) -> str:
    """Expire untagged images after N days; keep the newest N tagged images."""
    expiry_days = settings.untagged_expiry_days
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"Expire untagged images after {expiry_days} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": expiry_days,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the last {settings.keep_tagged_images} tagged images",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": ["*"],
                        "countType": "imageCountMoreThan",
                        "countNumber": settings.keep_tagged_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


class Registry(pulumi.ComponentResource):
    """A private repository that scans every push, with tags immutable by default so a tag
    always names the same image, encrypted at rest, pruned by a lifecycle policy.

    `force_delete` (off by default) lets `pulumi destroy` delete a repository that still
    holds images; only throw-away environments should turn it on.
    """

    repository_url: pulumi.Output[str]
    registry_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        repository_name: str,
        settings: RegistrySettings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecs-fargate-app:infra:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repository = aws.ecr.Repository(
            name,
            name=repository_name,
            image_tag_mutability="IMMUTABLE" if settings.immutable_tags else "MUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            encryption_configurations=[
                aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type=settings.encryption)
            ],
            force_delete=settings.force_delete,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=lifecycle_policy(settings),
            opts=child,
        )
        self.repository_url = repository.repository_url
        self.registry_id = repository.registry_id
        self.register_outputs({"repository_url": self.repository_url})
