"""The image a service runs: built from source and pushed to ECR, or an existing reference.

Built images are referenced by digest (`<repository>@sha256:…`), never by a moving tag, so a
task definition always names exactly the bytes that were pushed. The push tag is derived from
everything the build depends on (see `build_tag`), which keeps it unique in an immutable-tag
repository.
"""

import hashlib
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra.image_ref import parse_image_reference
from infra.registry import Registry
from infra.settings import PROJECT_ROOT, BuildSettings, ServiceSettings

DOCKER_PLATFORM = {"ARM64": "linux/arm64", "X86_64": "linux/amd64"}
_NOT_CONTEXT = {".venv", "node_modules", ".pytest_cache", ".mypy_cache", ".git"}


def context_digest(context: Path) -> str:
    """SHA-256 over the build context's file names and contents (caches excluded).

    Each file is one fixed-size record, the hashes of its name and of its bytes: with names
    and bytes fed in as they are, a file's bytes could read as more files (`x` holding
    `a\\0y\\0b` would hash like `x` holding `a` next to `y` holding `b`)."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in context.rglob("*")
        if path.is_file()
        and path.suffix != ".pyc"
        and not _NOT_CONTEXT.intersection(path.relative_to(context).parts)
    )
    for path in files:
        digest.update(hashlib.sha256(path.relative_to(context).as_posix().encode()).digest())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_tag(source: BuildSettings, platform: str) -> str:
    """The push tag of a build: `build-<12 hex>` over everything the image depends on, the
    context's files, the Dockerfile, the platform and the build arguments. A repository with
    immutable tags refuses a second push of a tag, so a tag must change whenever the image does
    (switching cpuArchitecture included)."""
    digest = hashlib.sha256()
    digest.update(context_digest(PROJECT_ROOT / source.context).encode())
    digest.update(b"\0dockerfile\0")
    digest.update((PROJECT_ROOT / source.dockerfile).read_bytes())
    digest.update(b"\0platform\0")
    digest.update(platform.encode())
    for name, value in sorted(source.args.items()):
        digest.update(f"\0arg\0{name}={value}".encode())
    return f"build-{digest.hexdigest()[:12]}"


class ServiceImage(pulumi.ComponentResource):
    """`ref` is what the task definition runs; `version` is its tag or digest.

    With `service.image` set nothing is built. Otherwise pulumi-docker builds the context for
    the service's CPU architecture and pushes it with a short-lived ECR token; the registry
    password is kept secret so it never reaches logs or state in plain text.
    """

    ref: pulumi.Output[str]
    version: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        service: ServiceSettings,
        registry: Registry,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ecs-fargate-app:infra:ServiceImage", name, None, opts)
        source = service.build_source
        if source is None:
            pinned = parse_image_reference(str(service.image))
            self.ref = pulumi.Output.from_input(str(pinned))
            self.version = pulumi.Output.from_input(pinned.version)
        else:
            platform = DOCKER_PLATFORM[service.cpu_architecture]
            token = aws.ecr.get_authorization_token_output(
                registry_id=registry.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
            )
            image = docker.Image(
                name,
                image_name=pulumi.Output.concat(
                    registry.repository_url, ":", build_tag(source, platform)
                ),
                build=docker.DockerBuildArgs(
                    context=source.context,
                    dockerfile=source.dockerfile,
                    platform=platform,
                    args=source.args or None,
                ),
                registry=docker.RegistryArgs(
                    server=registry.repository_url,
                    username=token.user_name,
                    password=pulumi.Output.secret(token.password),
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            pushed = pulumi.Output.all(registry.repository_url, image.repo_digest).apply(
                lambda parts: parse_image_reference(f"{parts[0]}@{parts[1].rsplit('@', 1)[-1]}")
            )
            self.ref = pushed.apply(str)
            self.version = pushed.apply(lambda reference: reference.version)
        self.register_outputs({"ref": self.ref})
