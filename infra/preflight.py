"""Fail a real `pulumi up`/`preview` early, naming what is missing, instead of deep inside a
provider: AWS credentials always, and a Docker engine and Dockerfile when an image is built
(`pulumi up` only: pulumi-docker does not build on preview).

Skipped under Pulumi's mocks (tests, `python -m infra.synth`), which need neither. Instance
or task roles on EC2/ECS cannot be seen without calling AWS; there, set
`ecs-fargate-app:preflightChecks: false`. Only names of variables and files are checked and
reported, never their values.
"""

import os
from collections.abc import Mapping
from pathlib import Path

import pulumi
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import get_monitor

from infra.settings import PROJECT_ROOT, StackSettings

CREDENTIAL_VARIABLE_SETS: tuple[tuple[str, ...], ...] = (
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_PROFILE",),
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI",),
    ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",),
)
PROVIDER_CREDENTIAL_KEYS = ("accessKey", "profile", "sharedCredentialsFiles")
DOCKER_SOCKETS = ("/var/run/docker.sock", "~/.docker/run/docker.sock")


class PrerequisiteError(pulumi.RunError):
    """A deploy cannot work on this machine; the message says what to provide."""


def check_deploy_prerequisites(settings: StackSettings) -> None:
    """Raise PrerequisiteError listing what this deploy lacks (no-op under mocks)."""
    if not settings.preflight_checks or isinstance(get_monitor(), MockMonitor):
        return
    aws_config = pulumi.Config("aws")
    problems = missing_prerequisites(
        environ=os.environ,
        home=Path.home(),
        provider_keys={key for key in PROVIDER_CREDENTIAL_KEYS if aws_config.get(key)},
        builds={
            service.name: source.dockerfile
            for service in settings.services
            if (source := service.build_source) is not None
        }
        if not pulumi.runtime.is_dry_run()
        else {},
    )
    if problems:
        raise PrerequisiteError(
            f"Cannot deploy stack '{pulumi.get_stack()}':\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


def missing_prerequisites(
    *,
    environ: Mapping[str, str],
    home: Path,
    provider_keys: set[str],
    builds: Mapping[str, str],
) -> list[str]:
    """What is missing; `builds` maps each service built here to its Dockerfile."""
    problems: list[str] = []
    if not _has_aws_credentials(environ, home, provider_keys):
        problems.append(
            "AWS credentials: none found. Looked for environment variables "
            "AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE "
            "+ AWS_ROLE_ARN, AWS_CONTAINER_CREDENTIALS_*; shared files ~/.aws/credentials and "
            "~/.aws/config (or AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE); config "
            "aws:accessKey / aws:profile. On EC2 or ECS with an instance or task role, set "
            "ecs-fargate-app:preflightChecks: false"
        )
    if builds:
        services = ", ".join(sorted(builds))
        if not _has_docker(environ, home):
            problems.append(
                f"Docker: no engine found (DOCKER_HOST is unset and there is no socket at "
                f"{' or '.join(DOCKER_SOCKETS)}); building the image of {services} needs one. "
                "Start Docker, or set ecs-fargate-app:image to an existing image to deploy "
                "without building"
            )
        for service, dockerfile in sorted(builds.items()):
            if not (PROJECT_ROOT / dockerfile).is_file():
                problems.append(f"Dockerfile: {dockerfile} (service {service}) does not exist")
    return problems


def _has_aws_credentials(environ: Mapping[str, str], home: Path, provider_keys: set[str]) -> bool:
    if provider_keys:
        return True
    if any(all(environ.get(name) for name in names) for names in CREDENTIAL_VARIABLE_SETS):
        return True
    shared_files = [
        Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"),
        Path(environ.get("AWS_CONFIG_FILE") or home / ".aws" / "config"),
    ]
    return any(path.expanduser().is_file() for path in shared_files)


def _has_docker(environ: Mapping[str, str], home: Path) -> bool:
    if environ.get("DOCKER_HOST"):
        return True
    sockets = [Path(socket.replace("~", str(home))) for socket in DOCKER_SOCKETS]
    return any(socket.exists() for socket in sockets)
