"""Container image references: `<repository>:<tag>` or `<repository>@sha256:<64 hex>`.

Pure Python on purpose (no Pulumi imports): the stack validates its `image` config with it and
the automation service reuses it to validate deploy requests before touching a stack.

The repository part follows the Docker reference grammar: an optional registry host (with an
optional port) followed by lowercase path components separated by `/`. A bare repository with
neither tag nor digest is rejected, because it silently means the moving tag `latest`.
"""

import re
from dataclasses import dataclass

EXPECTED_FORMS = "'<repository>:<tag>' or '<repository>@sha256:<64 hex digits>'"

_HOST = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(
    rf"(?:{_HOST}(?::[0-9]{{1,5}})?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_MAX_NAME_LENGTH = 255
"""ECS RegisterTaskDefinition, a container's `image`: "up to 255 characters total" with a tag; with
a digest "the 255 character limit applies only to ... everything before the @ sign"."""


class InvalidImageReference(ValueError):
    """An image reference that is not `<repository>:<tag>` or `<repository>@sha256:<hex>`."""


@dataclass(frozen=True)
class ImageReference:
    """A validated image reference: exactly one of `tag` and `digest` is set."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def version(self) -> str:
        """What the reference pins: the tag, or the `sha256:…` digest."""
        return self.tag if self.tag is not None else str(self.digest)

    def __str__(self) -> str:
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"


def parse_image_reference(value: str) -> ImageReference:
    """Parse and validate `value`; raise InvalidImageReference saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidImageReference(f"image reference is empty; expected {EXPECTED_FORMS}")
    if value != value.strip() or any(ch.isspace() for ch in value):
        raise InvalidImageReference(
            f"image reference {value!r} contains whitespace; expected {EXPECTED_FORMS}"
        )

    if "@" in value:
        repository, digest = value.split("@", 1)
        _check_length(repository, " before its '@'")
        if not _DIGEST.fullmatch(digest):
            raise InvalidImageReference(
                f"image reference {value!r} has digest {digest!r}; a digest must be "
                f"'sha256:' followed by 64 lowercase hex digits (expected {EXPECTED_FORMS})"
            )
        _check_repository(value, repository, allow_tag_suffix=False)
        return ImageReference(repository=repository, digest=digest)

    # The tag is after the last ':' that comes after the last '/', so a registry port
    # (host:5000/repo) is not mistaken for a tag.
    last_slash = value.rfind("/")
    colon = value.rfind(":")
    if colon <= last_slash:
        raise InvalidImageReference(
            f"image reference {value!r} has neither a tag nor a digest (that would mean the "
            f"moving tag 'latest'); expected {EXPECTED_FORMS}"
        )
    _check_length(value, "")
    repository, tag = value[:colon], value[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise InvalidImageReference(
            f"image reference {value!r} has tag {tag!r}; a tag is 1-128 characters of letters, "
            f"digits, '_', '.' and '-', not starting with '.' or '-' (expected {EXPECTED_FORMS})"
        )
    _check_repository(value, repository, allow_tag_suffix=True)
    return ImageReference(repository=repository, tag=tag)


def _check_length(named: str, where: str) -> None:
    if len(named) > _MAX_NAME_LENGTH:
        raise InvalidImageReference(
            f"image reference is {len(named)} characters long{where}; ECS allows at most "
            f"{_MAX_NAME_LENGTH}"
        )


def _check_repository(value: str, repository: str, *, allow_tag_suffix: bool) -> None:
    if not repository:
        raise InvalidImageReference(
            f"image reference {value!r} has an empty repository; expected {EXPECTED_FORMS}"
        )
    if not allow_tag_suffix and ":" in repository.rpartition("/")[2]:
        raise InvalidImageReference(
            f"image reference {value!r} has both a tag and a digest; use one of {EXPECTED_FORMS}"
        )
    if not _REPOSITORY.fullmatch(repository):
        raise InvalidImageReference(
            f"image reference {value!r} has repository {repository!r}, which is not a valid "
            "repository name (lowercase letters, digits and separators '.', '_', '__', '-' "
            "in '/'-separated parts, after an optional registry host[:port])"
        )
