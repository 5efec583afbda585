"""How the project runs the Pulumi engine: which CLI, which backend, which environment.

The CLI and the Python language host are built from Go modules by `scripts/install-pulumi` into
`.tools/pulumi/bin/`; a `pulumi` on PATH is used when that build is absent. Every run gets
`PULUMI_SKIP_UPDATE_CHECK`, `PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION` (no plugin download can
work here: a missing provider plugin is reported by the language host, by name, before the program
runs), a writable `PULUMI_HOME` inside the state dir unless the user set one, and the backend:
the local file backend under the state dir unless a backend URL (s3://, https://api.pulumi.com, …)
is given. The secrets passphrase comes from the environment only (the service hands it on
as a file: see child_env.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_PULUMI_ROOT = REPO_ROOT / ".tools" / "pulumi"
PASSPHRASE_VARIABLES = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


class EngineError(RuntimeError):
    """The engine cannot be run as configured; the message says what is missing."""


def find_pulumi_root(bundled_root: Path = BUNDLED_PULUMI_ROOT) -> Path:
    """The directory whose `bin/` holds `pulumi`: the project's own build, else PATH's."""
    if (bundled_root / "bin" / "pulumi").is_file():
        return bundled_root
    on_path = shutil.which("pulumi")
    if on_path is not None:
        return Path(on_path).resolve().parent.parent
    raise EngineError(
        f"the Pulumi CLI is not installed: {bundled_root / 'bin' / 'pulumi'} does not exist and"
        " there is no `pulumi` on PATH; run scripts/install-pulumi"
        " (it needs Go and the Go module proxy)"
    )


def file_backend_url(state_dir: Path) -> str:
    return (state_dir.resolve() / "backend").as_uri()


def uses_passphrase(backend_url: str) -> bool:
    """Self-managed backends encrypt secrets with a passphrase; Pulumi Cloud has its own keys."""
    return not backend_url.startswith(("https://", "http://"))


@dataclass(frozen=True)
class Engine:
    """Everything needed to start the engine on one project's stacks."""

    pulumi_root: Path
    backend_url: str
    pulumi_home: Path

    @classmethod
    def configure(
        cls,
        state_dir: Path,
        backend_url: str | None = None,
        pulumi_root: Path | None = None,
    ) -> Engine:
        home = os.environ.get("PULUMI_HOME")
        return cls(
            pulumi_root=pulumi_root or find_pulumi_root(),
            backend_url=backend_url or file_backend_url(state_dir),
            pulumi_home=Path(home) if home else state_dir.resolve() / "pulumi-home",
        )

    @property
    def bin_dir(self) -> Path:
        return self.pulumi_root / "bin"

    def check_passphrase(self, environ: dict[str, str] | None = None) -> None:
        environ = dict(os.environ) if environ is None else environ
        if not uses_passphrase(self.backend_url):
            return
        if not any(environ.get(name) for name in PASSPHRASE_VARIABLES):
            raise EngineError(
                "no secrets passphrase: set PULUMI_CONFIG_PASSPHRASE or"
                " PULUMI_CONFIG_PASSPHRASE_FILE in the environment"
                f" (the backend {self.backend_url} encrypts stack secrets with it)"
            )
        file = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if file and "PULUMI_CONFIG_PASSPHRASE" not in environ and not os.access(file, os.R_OK):
            raise EngineError(
                f"the secrets passphrase file {file} (PULUMI_CONFIG_PASSPHRASE_FILE) cannot be read"
            )

    def env_vars(self) -> dict[str, str]:
        """Variables for every engine process, on top of the inherited environment."""
        self.pulumi_home.mkdir(parents=True, exist_ok=True)
        if self.backend_url.startswith("file://"):
            Path(self.backend_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        return {
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_HOME": str(self.pulumi_home),
            "PULUMI_BACKEND_URL": self.backend_url,
            # The engine finds the language host and the dynamic-provider script on PATH.
            "PATH": os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", "")]),
        }

    def command(self) -> auto.PulumiCommand:
        return auto.PulumiCommand(root=str(self.pulumi_root))

    def workspace_options(
        self, project_dir: Path, command: auto.PulumiCommand | None = None
    ) -> auto.LocalWorkspaceOptions:
        """Pass `command` to reuse one: each new PulumiCommand runs `pulumi version`."""
        self.check_passphrase()
        return auto.LocalWorkspaceOptions(
            work_dir=str(project_dir),
            pulumi_home=str(self.pulumi_home),
            env_vars=self.env_vars(),
            pulumi_command=command or self.command(),
        )

    def stack(self, project_dir: Path, stack_name: str) -> auto.Stack:
        """The stack `stack_name` of the local program in `project_dir`, created if new."""
        return auto.create_or_select_stack(
            stack_name=stack_name,
            work_dir=str(project_dir),
            opts=self.workspace_options(project_dir),
        )
