"""The image: built from app/ and run by digest, or an existing reference set in config (how
the automation service deploys a given version), with APP_VERSION to match."""

import json
import re
from pathlib import Path

from app.contract import HEALTH_MESSAGE_ENV, VERSION_ENV
from infra.image import build_tag, context_digest
from infra.mock_cloud import ACCOUNT_ID
from infra.settings import BuildSettings
from tests.infra.stack_template import StackTemplate, Synth, service_config

ECR_URL = f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/my-application-api"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def container(template: StackTemplate, family: str = "app-api-task") -> dict[str, object]:
    task = template.has_resource_properties(
        "aws:ecs/taskDefinition:TaskDefinition", {"family": family}
    )
    (definition,) = json.loads(task.inputs["containerDefinitions"])
    assert isinstance(definition, dict)
    return definition


def environment(definition: dict[str, object]) -> dict[str, str]:
    entries = definition["environment"]
    assert isinstance(entries, list)
    return {entry["name"]: entry["value"] for entry in entries}


def test_build_mode_pushes_a_content_tag_and_runs_the_pushed_digest(synth: Synth) -> None:
    template = synth("prod")
    image = template.resource("docker:index/image:Image")
    assert image.inputs["imageName"] == f"{ECR_URL}:{build_tag(BuildSettings(), 'linux/arm64')}"
    assert re.fullmatch(rf"{re.escape(ECR_URL)}:build-[0-9a-f]{{12}}", image.inputs["imageName"])
    pushed_digest = image.outputs["repoDigest"].rsplit("@", 1)[1]
    definition = container(template)
    assert definition["image"] == f"{ECR_URL}@{pushed_digest}"  # never a moving tag
    assert environment(definition)["APP_VERSION"] == pushed_digest
    assert template.outputs["image"] == definition["image"]


def test_config_image_by_tag_is_run_as_is_and_nothing_is_built(synth: Synth) -> None:
    reference = f"{ECR_URL}:v2.4.1"
    template = synth("prod", {"image": reference})
    template.resource_count_is("docker:index/image:Image", 0)
    template.resource_count_is("aws:ecr/repository:Repository", 1)  # where CI pushes versions
    definition = container(template)
    assert definition["image"] == reference
    assert environment(definition)["APP_VERSION"] == "v2.4.1"
    assert template.outputs["image"] == reference


def test_config_image_by_digest_sets_app_version_to_the_digest(synth: Synth) -> None:
    reference = f"{ECR_URL}@{DIGEST}"
    template = synth("dev", {"image": reference})
    definition = container(template, "app-api-task-dev")
    assert definition["image"] == reference
    assert environment(definition)["APP_VERSION"] == DIGEST


def test_app_version_and_health_message_come_from_config(synth: Synth) -> None:
    service = service_config("prod", healthMessage="Everything is good here 04")
    config = {"image": f"{ECR_URL}@{DIGEST}", "appVersion": "2026.11.29-1", "services": [service]}
    variables = environment(container(synth("prod", config)))
    assert variables[VERSION_ENV] == "2026.11.29-1"
    assert variables[HEALTH_MESSAGE_ENV] == "Everything is good here 04"
    # Unset, the app answers its default (the seed's "Everything is good here 03").
    assert HEALTH_MESSAGE_ENV not in environment(container(synth("prod")))


def test_x86_services_are_built_for_amd64(synth: Synth) -> None:
    service = service_config("dev", cpuArchitecture="X86_64", spot=True)
    template = synth("dev", {"services": [service]})
    template.has_resource_properties(
        "docker:index/image:Image", {"build": {"platform": "linux/amd64"}}
    )
    template.has_resource_properties(
        "aws:ecs/taskDefinition:TaskDefinition", {"runtimePlatform": {"cpuArchitecture": "X86_64"}}
    )
    template.has_resource_properties(
        "aws:ecs/service:Service",
        {"capacityProviderStrategies": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]},
    )


def test_the_build_tag_follows_the_context_content(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text("print('v1')\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"cache")
    first = context_digest(tmp_path)
    (tmp_path / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"other cache")
    (tmp_path / "server.pyc").write_bytes(b"stray bytecode")
    assert context_digest(tmp_path) == first  # caches do not change the image
    (tmp_path / "server.py").write_text("print('v2')\n")
    assert context_digest(tmp_path) != first
    (tmp_path / "server.py").write_text("print('v1')\n")
    (tmp_path / "new.py").write_text("")
    assert context_digest(tmp_path) != first  # a new file, even empty, is a new image


def test_a_file_whose_bytes_read_as_more_files_is_another_context(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "x").write_bytes(b"a\0y\0b")
    (two / "x").write_bytes(b"a")
    (two / "y").write_bytes(b"b")
    assert context_digest(one) != context_digest(two)


def pushed_tag(template: StackTemplate) -> str:
    image_name = template.resource("docker:index/image:Image").inputs["imageName"]
    assert isinstance(image_name, str)
    return image_name.rsplit(":", 1)[1]


def test_the_push_tag_differs_per_platform(synth: Synth) -> None:
    """ECR refuses a second push of a tag into an IMMUTABLE repository: the X86_64 build of
    the same sources (spot needs it) must not reuse the ARM64 build's tag."""
    arm = synth("dev")
    x86 = synth("dev", {"services": [service_config("dev", cpuArchitecture="X86_64")]})
    assert arm.has_resource_properties(
        "docker:index/image:Image", {"build": {"platform": "linux/arm64"}}
    )
    assert pushed_tag(arm) != pushed_tag(x86)
    assert pushed_tag(arm) == pushed_tag(synth("dev"))  # and a rebuild of the same is the same


def test_the_push_tag_follows_build_args_and_the_dockerfile(synth: Synth) -> None:
    plain = pushed_tag(synth("dev"))
    with_args = synth("dev", {"services": [service_config("dev", build={"args": {"A": "1"}})]})
    with_args.has_resource_properties("docker:index/image:Image", {"build": {"args": {"A": "1"}}})
    assert pushed_tag(with_args) != plain
    other = synth("dev", {"services": [service_config("dev", build={"args": {"A": "2"}})]})
    assert pushed_tag(other) not in {plain, pushed_tag(with_args)}
    # Another Dockerfile over the same context (this one is inside it, so only the
    # Dockerfile's own part of the tag can tell them apart).
    assert build_tag(BuildSettings(dockerfile="app/requirements.in"), "linux/arm64") != (
        build_tag(BuildSettings(), "linux/arm64")
    )
