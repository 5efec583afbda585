"""Fixtures shared by the suites that run the real Pulumi engine."""

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from automation.engine import Engine

PROVIDER_FREE_PROJECT = Path(__file__).parent / "fixtures" / "provider_free"
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "__main__.py")


def copy_provider_free_project(destination: Path) -> Path:
    """A private copy of the provider-free project (stack files get written), sharing its .venv.
    Each stack file names its marker dir, outside the project (`marker_dir`): the service runs
    jobs in private copies of the project, where the program's default would not outlive the
    job, and files the program wrote into the project would change its source."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy(PROVIDER_FREE_PROJECT / name, destination / name)
    (destination / ".venv").symlink_to(PROVIDER_FREE_PROJECT / ".venv")
    for stack in ("dev", "prod"):
        with (destination / f"Pulumi.{stack}.yaml").open("a") as file:
            file.write(marker_dir_line(destination, stack))
    return destination


def marker_dir(project: Path, stack: str) -> Path:
    """Where the fixture's marker files of `stack` go for the project copy at `project`."""
    return project.parent / f"{project.name}-markers" / stack


def marker_dir_line(project: Path, stack: str) -> str:
    return f"  provider-free-fixture:marker_dir: {marker_dir(project, stack)}\n"


def write_stack_file(project: Path, stack: str, greeting: str) -> Path:
    """`Pulumi.<stack>.yaml` with a greeting and the stack's marker dir in the project."""
    path = project / f"Pulumi.{stack}.yaml"
    path.write_text(
        f"config:\n  provider-free-fixture:greeting: {greeting}\n" + marker_dir_line(project, stack)
    )
    return path


@pytest.fixture
def provider_free_project(tmp_path: Path) -> Path:
    return copy_provider_free_project(tmp_path / "project")


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator["Engine"]:
    """The project's own engine build on a file backend in a temporary state dir."""
    # Imported here, not at the top: the infra suite, which shares this file, never needs it.
    from automation.engine import BUNDLED_PULUMI_ROOT, Engine

    if not (BUNDLED_PULUMI_ROOT / "bin" / "pulumi").is_file():
        pytest.fail(
            "the Pulumi CLI is not built: run scripts/setup (it runs scripts/install-pulumi)"
        )
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
    monkeypatch.delenv("PULUMI_HOME", raising=False)
    yield Engine.configure(state_dir=tmp_path / "state")
