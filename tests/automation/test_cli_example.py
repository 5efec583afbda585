"""examples/github-actions-deploy.yml: what the pipeline does, and that the client it installs
is the one this project pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = REPO_ROOT / "examples" / "github-actions-deploy.yml"


def steps() -> list[dict[str, Any]]:
    workflow: dict[str, Any] = YAML(typ="safe").load(WORKFLOW.read_text())
    assert workflow["permissions"]["id-token"] == "write", "OIDC needs id-token: write"
    found: list[dict[str, Any]] = workflow["jobs"]["deploy"]["steps"]
    return found


def step(uses: str) -> dict[str, Any]:
    matching = [entry for entry in steps() if entry.get("uses", "").startswith(uses + "@")]
    assert len(matching) == 1, f"no single {uses} step"
    return matching[0]


def test_the_pipeline_builds_arm64_pushes_to_ecr_and_deploys_with_deployctl() -> None:
    assert "role-to-assume" in step("aws-actions/configure-aws-credentials")["with"]
    step("aws-actions/amazon-ecr-login")
    step("docker/setup-buildx-action")
    build = step("docker/build-push-action")["with"]
    assert build["platforms"] == "linux/arm64" and build["push"] is True
    assert build["context"] == "app" and build["file"] == "app/Dockerfile"
    assert (REPO_ROOT / build["file"]).is_file()

    names = [entry.get("name") for entry in steps()]
    assert names.index("Install deployctl") < names.index("Deploy to prod")
    deploy = steps()[names.index("Deploy to prod")]
    assert re.search(r'^deployctl deploy prod "\$IMAGE" --follow\b', deploy["run"], re.M)
    assert "@${{ steps.build.outputs.digest }}" in deploy["env"]["IMAGE"], "deploy the digest"
    assert set(deploy["env"]) >= {"AUTOMATION_URL", "AUTOMATION_TOKEN"}


def test_the_pipeline_installs_the_client_dependencies_this_project_pins() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(
        requirement.partition("==")[::2]
        for requirement in project["dependencies"]
        if "==" in requirement
    )
    install = steps()[[entry.get("name") for entry in steps()].index("Install deployctl")]["run"]
    installed = dict(re.findall(r'"([a-z]+)==([^"]+)"', install))
    assert set(installed) == {"httpx", "typer", "rich"}
    assert installed == {name: pins[name] for name in installed}
    assert "--no-deps ." in install
