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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SCOPE = re.compile(r"read|(operate|approve):(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,99})")
HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?")
CONFIG_KEY = re.compile(r"([A-Za-z0-9_.-]+:)?[A-Za-z0-9_.-]+")
MIN_TOKEN_LENGTH = 16


class SettingsError(ValueError):
    """Settings the service cannot run with; the message says which and why."""


class TokenSpec(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    token: SecretStr
    scopes: list[str] = Field(min_length=1)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr, info: ValidationInfo) -> SecretStr:
        length = len(token.get_secret_value())
        if length < MIN_TOKEN_LENGTH:
            name = info.data.get("name", "?")
            raise ValueError(f"token {name!r} is {length} characters; at least {MIN_TOKEN_LENGTH}")
        return token

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            if not SCOPE.fullmatch(scope):
                raise ValueError(
                    f"unknown scope {scope!r}; scopes are 'read', 'operate:<env>',"
                    " 'operate:*', 'approve:<env>', 'approve:*'"
                )
        return scopes


WEBHOOK_EVENTS = ("job.finished", "verification.failed", "rollback.started", "drift.found")


class HeaderMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    value: str = Field(
        max_length=1000,
        description="Expected value; `{image}` and `{image_tag}` stand for the job's image.",
    )


class VerifySpec(BaseModel):
    """How the deployment is probed after a successful up; the defaults fit the stack (its
    `url` output is the load balancer's, and the target group checks `/health`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    enabled: bool = True
    output: str = Field(default="url", min_length=1, max_length=200)
    path: str = Field(default="/health", pattern=r"^/[^\s]*$", max_length=2000)
    status: int = Field(default=200, ge=100, le=599)
    successes: int = Field(default=3, ge=1, le=100)
    interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    timeout_seconds: float = Field(default=120.0, gt=0, le=86400)
    rollback: bool = True
    json_match: dict[str, Any] | None = Field(
        default=None, alias="json", description="Keys and values the JSON body must have."
    )
    header: HeaderMatch | None = None


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    secret: SecretStr
    events: list[str] = Field(default_factory=lambda: list(WEBHOOK_EVENTS), min_length=1)
    environments: list[str] = Field(
        default_factory=lambda: ["*"], min_length=1, description="`*` for every environment."
    )

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"a webhook secret needs at least {MIN_TOKEN_LENGTH} characters")
        return secret

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        for event in events:
            if event not in WEBHOOK_EVENTS:
                raise ValueError(
                    f"unknown event {event[:64]!r}; events: {', '.join(WEBHOOK_EVENTS)}"
                )
        return events


def _parse_json_setting(value: Any, expected: str = "") -> Any:
    """JSON text from the environment; the error says where it broke, never what it holds."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"not valid JSON ({error.msg} at character {error.pos}){expected}"
        ) from None


def _parse_tokens(value: Any) -> Any:
    return _parse_json_setting(
        value,
        "; expected a JSON list like"
        ' [{"name": "ci", "token": "<at least 16 characters>", "scopes": ["read"]}]',
    )


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
    tokens: Annotated[list[TokenSpec], NoDecode] = Field(default_factory=list)
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
    retention_days: int = Field(
        default=90,
        ge=1,
        le=36500,
        description="Finished jobs older than this are deleted (the kept deploys excepted).",
    )
    require_approval: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Environments where changes run only as an approved apply of a preview.",
    )
    verify: Annotated[dict[str, VerifySpec], NoDecode] = Field(
        default_factory=dict,
        description="JSON object: environment (or `*`) -> how to verify a successful up.",
    )
    drift_schedule: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, description="JSON object: environment -> seconds between checks."
    )
    webhooks: Annotated[list[WebhookSpec], NoDecode] = Field(default_factory=list)
    plan_ttl_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        le=30 * 24 * 3600.0,
        description="How long after its preview a saved plan may be applied.",
    )
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Without tokens, Host names accepted besides the bound loopback address.",
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_connections: int = Field(default=256, ge=1, le=10_000)
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator(
        "environments", "config_allowlist", "allowed_hosts", "require_approval", mode="before"
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens(cls, value: Any) -> Any:
        return _parse_tokens(value)

    @field_validator("verify", "drift_schedule", "webhooks", mode="before")
    @classmethod
    def _json_settings(cls, value: Any) -> Any:
        return _parse_json_setting(value)

    @field_validator("drift_schedule")
    @classmethod
    def _intervals(cls, schedule: dict[str, float]) -> dict[str, float]:
        for name, seconds in schedule.items():
            if not 1 <= seconds <= 30 * 24 * 3600:
                raise ValueError(f"{name}: {seconds:g} s; an interval is 1 s to 30 days")
        return schedule

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not HOST_NAME.fullmatch(name):
                raise ValueError(f"{name[:64]!r} is not a host name (letters, digits, '.', '-')")
        return [name.lower() for name in names]

    @field_validator("environments", "require_approval")
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
            raise ValueError(f"AUTOMATION_PROJECT_DIR: {self.project_dir} holds no Pulumi.yaml")
        names = [spec.name for spec in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("AUTOMATION_TOKENS: two tokens have the same name")
        secrets = [spec.token.get_secret_value() for spec in self.tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("AUTOMATION_TOKENS: two tokens have the same value")
        self._check_environments()
        return self

    def _check_environments(self) -> None:
        """Every environment and every `operate:<env>` scope must name a stack file."""
        files = sorted(self.project_dir.glob("Pulumi.*.yaml"))
        have = ", ".join(path.name for path in files) or "none"
        for name in self.environments:
            if not (self.project_dir / f"Pulumi.{name}.yaml").is_file():
                raise ValueError(
                    f"AUTOMATION_ENVIRONMENTS: {name!r} has no stack file Pulumi.{name}.yaml"
                    f" in {self.project_dir} (stack files there: {have})"
                )
        known = self.environment_names()
        for spec in self.tokens:
            for scope in spec.scopes:
                kind, _, environment = scope.partition(":")
                if environment and environment not in ("*", *known):
                    raise ValueError(
                        f"AUTOMATION_TOKENS: token {spec.name!r} has scope {scope!r}, but"
                        f" {environment!r} is not an environment; environments:"
                        f" {', '.join(known) or 'none'} (or '{kind}:*')"
                    )
        named = [
            ("AUTOMATION_REQUIRE_APPROVAL", self.require_approval),
            ("AUTOMATION_VERIFY", [name for name in self.verify if name != "*"]),
            ("AUTOMATION_DRIFT_SCHEDULE", list(self.drift_schedule)),
            *(
                (
                    f"AUTOMATION_WEBHOOKS[{index}].environments",
                    [e for e in hook.environments if e != "*"],
                )
                for index, hook in enumerate(self.webhooks)
            ),
        ]
        for setting, names in named:
            for name in names:
                if name not in known:
                    raise ValueError(
                        f"{setting}: {name!r} is not an environment;"
                        f" environments: {', '.join(known) or 'none'}"
                    )

    def verify_spec(self, environment: str) -> VerifySpec:
        return self.verify.get(environment) or self.verify.get("*") or VerifySpec()

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
        message = str(item["msg"]).removeprefix("Value error, ")
        if not loc:  # a check across settings: its message names them
            lines.append(message)
            continue
        name = f"AUTOMATION_{loc[0].upper()}"
        where = "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in loc[1:])
        lines.append(f"{name}{where}: {message}")
    return "\n".join(lines)
