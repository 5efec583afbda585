"""A real deploy stops early, naming what this machine lacks; mocks skip the check."""

from pathlib import Path

import pulumi
import pytest

import infra.preflight
from infra.mock_cloud import PROJECT, FakeAws
from infra.preflight import PrerequisiteError, check_deploy_prerequisites, missing_prerequisites
from infra.settings import PROJECT_ROOT, StackSettings, parse_settings
from tests.infra.stack_template import Synth

BUILDS = {"api": "app/Dockerfile"}


def missing(environ: dict[str, str], home: Path, builds: dict[str, str] | None = None) -> list[str]:
    return missing_prerequisites(
        environ=environ, home=home, provider_keys=set(), builds=BUILDS if builds is None else builds
    )


def test_nothing_found_lists_credentials_and_docker(tmp_path: Path) -> None:
    problems = missing({}, tmp_path)
    assert len(problems) == 2 + (not (PROJECT_ROOT / "app/Dockerfile").is_file())
    credentials, docker = problems[:2]
    assert credentials.startswith("AWS credentials: none found.")
    assert "AWS_ACCESS_KEY_ID" in credentials and "~/.aws/credentials" in credentials
    assert "preflightChecks: false" in credentials
    assert docker.startswith("Docker: no engine found")
    assert "building the image of api" in docker and "ecs-fargate-app:image" in docker


@pytest.mark.parametrize(
    "environ",
    [
        {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret"},
        {"AWS_PROFILE": "deployer"},
        {"AWS_WEB_IDENTITY_TOKEN_FILE": "/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/ci"},
        {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"},
    ],
)
def test_credentials_from_the_environment_are_enough(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    problems = missing(environ, tmp_path, builds={})
    assert problems == []
    assert not any(value in " ".join(problems) for value in environ.values())


def test_the_credentials_message_names_every_place_the_aws_sdks_look(tmp_path: Path) -> None:
    """The exact text a user reads; the variable names and files are AWS's (SDK reference guide,
    "Standardized credential providers"), the opt-out key is this project's config key."""
    assert missing({}, tmp_path, builds={}) == [
        "AWS credentials: none found. Looked for environment variables "
        "AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE "
        "+ AWS_ROLE_ARN, AWS_CONTAINER_CREDENTIALS_*; shared files ~/.aws/credentials and "
        "~/.aws/config (or AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE); config "
        "aws:accessKey / aws:profile. On EC2 or ECS with an instance or task role, set "
        "ecs-fargate-app:preflightChecks: false"
    ]


def test_the_docker_message_names_the_sockets_the_services_and_the_way_out(tmp_path: Path) -> None:
    creds = {"AWS_PROFILE": "p"}
    builds = {"worker": "app/__init__.py", "api": "app/__init__.py"}  # files that exist
    assert missing(creds, tmp_path, builds) == [
        "Docker: no engine found (DOCKER_HOST is unset and there is no socket at "
        "/var/run/docker.sock or ~/.docker/run/docker.sock); building the image of api, worker "
        "needs one. Start Docker, or set ecs-fargate-app:image to an existing image to deploy "
        "without building"
    ]


def test_a_shared_config_file_alone_is_enough(tmp_path: Path) -> None:
    """The SDKs read keys and profiles from ~/.aws/config too, or from AWS_CONFIG_FILE."""
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[default]\n")
    assert missing({}, tmp_path, builds={}) == []
    elsewhere = tmp_path / "aws-config"
    elsewhere.write_text("[default]\n")
    assert missing({"AWS_CONFIG_FILE": str(elsewhere)}, tmp_path / "x", builds={}) == []
    # A file named in the variable that does not exist is not credentials.
    assert missing({"AWS_CONFIG_FILE": str(tmp_path / "none")}, tmp_path / "x", builds={}) != []


def test_half_a_key_pair_is_not_credentials(tmp_path: Path) -> None:
    assert missing({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}, tmp_path, builds={})[0].startswith(
        "AWS credentials"
    )


def test_shared_credentials_and_provider_config_are_enough(tmp_path: Path) -> None:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\n")
    assert missing({}, tmp_path, builds={}) == []
    elsewhere = tmp_path / "creds"
    elsewhere.write_text("[default]\n")
    assert missing({"AWS_SHARED_CREDENTIALS_FILE": str(elsewhere)}, tmp_path / "x", builds={}) == []
    assert (
        missing_prerequisites(environ={}, home=tmp_path / "x", provider_keys={"profile"}, builds={})
        == []
    )


def test_docker_host_or_socket_satisfies_the_build(tmp_path: Path) -> None:
    creds = {"AWS_PROFILE": "p"}
    dockerfile_ok = {"api": "app/__init__.py"}  # an existing file stands in for the Dockerfile
    assert missing({**creds, "DOCKER_HOST": "tcp://127.0.0.1:2375"}, tmp_path, dockerfile_ok) == []
    (tmp_path / ".docker" / "run").mkdir(parents=True)
    (tmp_path / ".docker" / "run" / "docker.sock").touch()
    assert missing(creds, tmp_path, dockerfile_ok) == []


def test_a_missing_dockerfile_is_named(tmp_path: Path) -> None:
    problems = missing(
        {"AWS_PROFILE": "p", "DOCKER_HOST": "x"}, tmp_path, {"web": "web/Dockerfile"}
    )
    assert problems == ["Dockerfile: web/Dockerfile (service web) does not exist"]


def settings(**raw: str) -> StackSettings:
    return parse_settings(raw, region="us-east-1", stack="dev", namespace=PROJECT)


def test_a_real_deploy_raises_one_error_naming_everything_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infra.preflight, "get_monitor", lambda: object())  # not a mock monitor
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "DOCKER_HOST",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    pulumi.runtime.set_all_config({})
    pulumi.runtime.set_mocks(FakeAws("us-east-1"), project=PROJECT, stack="dev", preview=False)
    with pytest.raises(PrerequisiteError) as raised:
        check_deploy_prerequisites(settings())
    lines = str(raised.value).splitlines()
    assert lines[0] == "Cannot deploy stack 'dev':"
    assert lines[1].startswith("  - AWS credentials: none found")
    assert lines[2].startswith("  - Docker: no engine found")

    # A preview builds nothing (pulumi-docker does not build on preview): no Docker needed.
    pulumi.runtime.set_mocks(FakeAws("us-east-1"), project=PROJECT, stack="dev", preview=True)
    with pytest.raises(PrerequisiteError) as raised:
        check_deploy_prerequisites(settings())
    assert "Docker" not in str(raised.value)

    # Deploying a given image needs no Docker either; opting out skips the check entirely.
    pulumi.runtime.set_mocks(FakeAws("us-east-1"), project=PROJECT, stack="dev", preview=False)
    with pytest.raises(PrerequisiteError) as raised:
        check_deploy_prerequisites(settings(image="nginx:1.27"))
    assert "Docker" not in str(raised.value)
    check_deploy_prerequisites(settings(preflightChecks="false"))


def test_mocked_runs_skip_the_check(
    synth: Synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "DOCKER_HOST"):
        monkeypatch.delenv(name, raising=False)
    template = synth("dev")
    template.resource("docker:index/image:Image")


@pytest.mark.parametrize("key", ["aws:accessKey", "aws:profile", "aws:sharedCredentialsFiles"])
def test_the_aws_providers_own_credential_config_is_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """Keys of the AWS provider's config (pulumi-aws docs, "Configuration"), in stack config."""
    monkeypatch.setattr(infra.preflight, "get_monitor", lambda: object())  # not a mock monitor
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    pulumi.runtime.set_mocks(FakeAws("us-east-1"), project=PROJECT, stack="dev", preview=True)
    pulumi.runtime.set_all_config({key: "value-from-stack-config"})
    try:
        check_deploy_prerequisites(settings())
        pulumi.runtime.set_all_config({f"{PROJECT}:{key.split(':')[1]}": "the project's, not aws"})
        with pytest.raises(PrerequisiteError, match="AWS credentials: none found"):
            check_deploy_prerequisites(settings())
    finally:
        pulumi.runtime.set_all_config({})
