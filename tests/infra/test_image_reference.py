"""infra.image_ref: the image reference check the stack and the automation service share."""

import subprocess
import sys

import pytest

from infra.image_ref import ImageReference, InvalidImageReference, parse_image_reference
from infra.settings import PROJECT_ROOT

DIGEST = "sha256:" + "ab" * 32
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-application-api"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{ECR}:v1.2.3", ImageReference(ECR, tag="v1.2.3")),
        (f"{ECR}@{DIGEST}", ImageReference(ECR, digest=DIGEST)),
        (
            "localhost:5000/team/app:build-1",
            ImageReference("localhost:5000/team/app", tag="build-1"),
        ),
        ("nginx:1.27", ImageReference("nginx", tag="1.27")),
        (
            "public.ecr.aws/nginx/nginx:stable_1",
            ImageReference("public.ecr.aws/nginx/nginx", tag="stable_1"),
        ),
        # A registry port is not a tag, next to a digest either; a bare name takes one too.
        (
            f"localhost:5000/team/app@{DIGEST}",
            ImageReference("localhost:5000/team/app", digest=DIGEST),
        ),
        (f"nginx@{DIGEST}", ImageReference("nginx", digest=DIGEST)),
    ],
)
def test_valid_references_parse_into_repository_and_tag_or_digest(
    text: str, expected: ImageReference
) -> None:
    parsed = parse_image_reference(text)
    assert parsed == expected
    assert str(parsed) == text
    assert parsed.version == (expected.tag or expected.digest)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        (ECR, "neither a tag nor a digest"),
        ("localhost:5000/app", "neither a tag nor a digest"),
        (f"{ECR}@sha256:abc", "64 lowercase hex"),
        (f"{ECR}@sha256:{'AB' * 32}", "64 lowercase hex"),
        (f"{ECR}@md5:{'ab' * 32}", "must be 'sha256:'"),
        (f"{ECR}:v1@{DIGEST}", "both a tag and a digest"),
        (
            "My-App:v1",
            "not a valid repository name (lowercase letters, digits and separators '.', '_', "
            "'__', '-' in '/'-separated parts, after an optional registry host[:port])",
        ),
        # A tag only ever follows the last '/', and only once.
        ("registry.example.com/team:1/app", "neither a tag nor a digest"),
        (f"registry.example.com/team:1/app@{DIGEST}", "not a valid repository name"),
        ("registry.example.com/app:v1:v2", "not a valid repository name"),
        (f"{ECR}@{DIGEST}@{DIGEST}", "has digest"),
        (f"{ECR}:", "has tag ''"),
        (f"{ECR}:-v1", "has tag '-v1'"),
        (f"{ECR}:v1 ", "whitespace"),
        (f"{ECR}:v 1", "whitespace"),
        (f"{ECR}:{'x' * 129}", "1-128 characters"),
        (":v1", "empty repository"),
    ],
)
def test_malformed_references_are_rejected_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(InvalidImageReference) as raised:
        parse_image_reference(text)
    message = str(raised.value)
    assert complaint in message
    if text.strip():
        assert repr(text) in message  # names the value it rejects


def test_ecs_limits_the_name_to_255_characters_a_digest_excluded() -> None:
    """ECS RegisterTaskDefinition, a container's `image`: with a tag "up to 255 characters
    total"; with a digest the limit "applies only to ... everything before the @ sign"."""
    repository = "registry.example.com/" + "a" * 230  # 251 characters
    assert len(str(parse_image_reference(f"{repository}:v12"))) == 255
    assert parse_image_reference(f"{repository}1234@{DIGEST}").digest == DIGEST
    with pytest.raises(InvalidImageReference) as raised:
        parse_image_reference(f"{repository}:v123")
    assert str(raised.value) == "image reference is 256 characters long; ECS allows at most 255"
    with pytest.raises(InvalidImageReference) as raised:
        parse_image_reference(f"{repository}12345@{DIGEST}")
    assert str(raised.value) == (
        "image reference is 256 characters long before its '@'; ECS allows at most 255"
    )


def test_the_module_has_no_pulumi_dependency() -> None:
    """The automation service imports it to validate requests without loading Pulumi."""
    probe = "import sys, infra.image_ref; print('pulumi' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    assert result.stdout.strip() == "False"
