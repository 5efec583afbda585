"""The real Pulumi engine, built by scripts/install-pulumi, driven through the Automation API."""

import re
import subprocess
from pathlib import Path

import pytest
from pulumi import automation as auto

from automation.engine import REPO_ROOT, Engine, EngineError, find_pulumi_root

pytestmark = pytest.mark.timeout(180)


def pinned_version() -> str:
    script = (REPO_ROOT / "scripts" / "install-pulumi").read_text()
    match = re.search(r"^PULUMI_VERSION=(v\S+)$", script, re.MULTILINE)
    assert match, "scripts/install-pulumi pins no PULUMI_VERSION"
    return match.group(1)


def test_built_cli_reports_the_pinned_version(engine: Engine) -> None:
    version = pinned_version()
    go_mod = (REPO_ROOT / "tools" / "pulumi" / "go.mod").read_text()
    for module in ("pkg", "sdk"):
        assert re.search(
            rf"^\s*github.com/pulumi/pulumi/{module}/v3 {version}( // indirect)?$",
            go_mod,
            re.MULTILINE,
        )
    printed = subprocess.run(
        [engine.bin_dir / "pulumi", "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == version
    assert str(engine.command().version) == version.removeprefix("v")


def test_cli_is_not_older_than_the_python_sdk() -> None:
    lock = (REPO_ROOT / "requirements.lock").read_text()
    match = re.search(r"^pulumi==(\S+) ", lock, re.MULTILINE)
    assert match, "requirements.lock pins no pulumi"
    cli = tuple(int(part) for part in pinned_version().removeprefix("v").split("."))
    sdk = tuple(int(part) for part in match.group(1).split("."))
    assert cli >= sdk


def test_preview_up_noop_up_destroy(engine: Engine, provider_free_project: Path) -> None:
    marker = provider_free_project / "markers" / "greeting.txt"
    stack = engine.stack(provider_free_project, "dev")
    stack.set_config("marker_dir", auto.ConfigValue(str(marker.parent)))
    stack.set_config("token", auto.ConfigValue("s3cr3t-t0ken", secret=True))

    preview = stack.preview()
    assert preview.change_summary == {auto.OpType.CREATE: 4}
    assert not marker.exists(), "a preview must not create anything"

    first = stack.up()
    assert first.summary.result == "succeeded"
    assert first.summary.resource_changes == {"create": 4}
    assert first.outputs["greeting"].value == "hello from dev"
    assert first.outputs["marker_path"].value == str(marker)
    assert first.outputs["stack"].value == "dev"
    assert first.outputs["token_length"].value == len("s3cr3t-t0ken")
    assert first.outputs["token_length"].secret
    assert marker.read_text() == "hello from dev"

    second = stack.up()
    assert second.summary.resource_changes == {"same": 4}
    assert marker.read_text() == "hello from dev"

    stack.set_config("greeting", auto.ConfigValue("hello again"))
    third = stack.up()
    assert third.summary.resource_changes == {"update": 1, "same": 3}
    assert marker.read_text() == "hello again"

    stack_file = (provider_free_project / "Pulumi.dev.yaml").read_text()
    assert "s3cr3t-t0ken" not in stack_file and "secure:" in stack_file

    destroyed = stack.destroy()
    assert destroyed.summary.resource_changes == {"delete": 4}
    assert not marker.exists()


def test_failing_program_reports_the_providers_error(
    engine: Engine, provider_free_project: Path
) -> None:
    stack = engine.stack(provider_free_project, "dev")
    stack.set_config("marker_dir", auto.ConfigValue(str(provider_free_project / "markers")))
    stack.set_config("fail", auto.ConfigValue("true"))
    with pytest.raises(auto.CommandError, match=r"asked to fail \(config fail=true\)"):
        stack.up()


def test_missing_provider_plugin_fails_early_naming_it(engine: Engine, tmp_path: Path) -> None:
    """A program whose environment holds pulumi-aws (the repo's .venv), without the aws plugin."""
    project = tmp_path / "needs-aws"
    project.mkdir()
    runtime = f"runtime:\n  name: python\n  options:\n    virtualenv: {REPO_ROOT / '.venv'}\n"
    (project / "Pulumi.yaml").write_text("name: needs-aws\n" + runtime)
    (project / "__main__.py").write_text("raise SystemExit('the program must not run')\n")
    stack = engine.stack(project, "dev")
    with pytest.raises(auto.CommandError) as failure:
        stack.preview()
    message = str(failure.value)
    assert "needs Pulumi provider plugins that are not installed" in message
    assert "pulumi plugin install resource aws 7.51.1" in message
    assert "the program must not run" not in message


def test_missing_passphrase_is_a_clear_error(
    engine: Engine, provider_free_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    with pytest.raises(EngineError, match="PULUMI_CONFIG_PASSPHRASE"):
        engine.stack(provider_free_project, "dev")


def test_cloud_backend_needs_no_passphrase(engine: Engine) -> None:
    cloud = Engine(engine.pulumi_root, "https://api.pulumi.com", engine.pulumi_home)
    cloud.check_passphrase(environ={})  # does not raise
    with pytest.raises(EngineError):
        engine.check_passphrase(environ={})


def test_missing_cli_names_the_install_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match="scripts/install-pulumi"):
        find_pulumi_root(bundled_root=tmp_path / "absent")
