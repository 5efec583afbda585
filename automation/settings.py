"""The service's settings: environment variables with the prefix `AUTOMATION_` (pydantic-settings).

Lists (`ENVIRONMENTS`, `CONFIG_ALLOWLIST`) may be JSON or comma-separated; `TOKENS` is JSON:
`[{"name": "ci", "token": "…", "scopes": ["read", "operate:dev"]}]`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SCOPE = re.compile(r"read|operate:(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,99})")
CONFIG_KEY = re.compile(r"([A-Za-z0-9_.-]+:)?[A-Za-z0-9_.-]+")
MIN_TOKEN_LENGTH = 16


class SettingsError(ValueError):
    """Settings the service cannot run with; the message says which and why."""


class TokenSpec(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    token: SecretStr = Field(min_length=MIN_TOKEN_LENGTH)
    scopes: list[str] = Field(min_length=1)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            if not SCOPE.fullmatch(scope):
                raise ValueError(
                    f"unknown scope {scope!r}; scopes are 'read', 'operate:<env>', 'operate:*'"
                )
        return scopes


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOMATION_")

    project_dir: Path = REPO_ROOT
    state_dir: Path = REPO_ROOT / ".state"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    backend_url: str | None = None
    environments: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Default: every Pulumi.<env>.yaml in project_dir."
    )
    tokens: list[TokenSpec] = Field(default_factory=list)
    queue_limit: int = Field(default=10, ge=1, le=1000, description="Queued jobs per environment.")
    config_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["image", "appVersion"],
        description="Config keys a request may set (infra/settings.py: image, appVersion).",
    )
    image_config_key: str = "image"
    recovery_wait_seconds: float = Field(default=120.0, ge=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    kept_deploys: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Successful ups per environment whose source snapshots are kept (rollback).",
    )
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")

    @field_validator("environments", "config_allowlist", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("environments")
    @classmethod
    def _environment_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not STACK_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a stack name (letters, digits, '_', '.', '-')")
        return names

    @field_validator("config_allowlist")
    @classmethod
    def _config_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not CONFIG_KEY.fullmatch(key):
                raise ValueError(f"{key!r} is not a config key ('name' or 'namespace:name')")
        return keys

    @field_validator("image_config_key")
    @classmethod
    def _image_key(cls, key: str) -> str:
        if not CONFIG_KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a config key ('name' or 'namespace:name')")
        return key

    @field_validator("project_dir", "state_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not (self.project_dir / "Pulumi.yaml").is_file():
            raise ValueError(f"project_dir {self.project_dir} holds no Pulumi.yaml")
        names = [spec.name for spec in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("tokens: two tokens have the same name")
        secrets = [spec.token.get_secret_value() for spec in self.tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("tokens: two tokens have the same value")
        return self

    @property
    def database_path(self) -> Path:
        return self.state_dir / "automation.db"

    def environment_names(self) -> list[str]:
        """The configured environments, or one per `Pulumi.<env>.yaml` in the project."""
        if self.environments:
            return list(dict.fromkeys(self.environments))
        files = self.project_dir.glob("Pulumi.*.yaml")
        found = (path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in files)
        return sorted(name for name in found if STACK_NAME.fullmatch(name))

    @property
    def open_access(self) -> bool:
        return not self.tokens

    def check_exposure(self) -> None:
        """Without tokens the API is open: allowed only on a loopback address."""
        if self.tokens or is_loopback(self.host):
            return
        raise SettingsError(
            f"refusing to listen on {self.host} without tokens: anyone who can reach it could"
            " run and destroy stacks. Set AUTOMATION_TOKENS (JSON list of"
            ' {"name", "token", "scopes"}) or listen on 127.0.0.1'
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_errors(error: Any) -> str:
    """A pydantic ValidationError on Settings as lines naming the environment variables."""
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        name = f"AUTOMATION_{loc[0].upper()}" if loc else "AUTOMATION_*"
        where = "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in loc[1:])
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}{where}: {message}")
    return "\n".join(lines)
