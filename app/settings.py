"""The app's settings, read from the environment and checked before the server starts."""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from app import contract

DEFAULT_HEALTH_MESSAGE = "Everything is good here 03"
DEFAULT_VERSION = "dev"
_DIGITS = re.compile(r"[0-9]+")


class SettingsError(ValueError):
    """An environment variable holds a value the app cannot run with."""


@dataclass(frozen=True)
class Settings:
    port: int
    health_message: str
    version: str


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read PORT, APP_HEALTH_MESSAGE and APP_VERSION; unset means the default, blank is an error."""
    return Settings(
        port=_port(environ.get("PORT")),
        health_message=_non_blank(environ, contract.HEALTH_MESSAGE_ENV, DEFAULT_HEALTH_MESSAGE),
        version=_non_blank(environ, contract.VERSION_ENV, DEFAULT_VERSION),
    )


def _port(raw: str | None) -> int:
    if raw is None:
        return contract.PORT
    if _DIGITS.fullmatch(raw) is None or not 1 <= int(raw) <= 65535:
        raise SettingsError(f"PORT must be a whole number from 1 to 65535, got {raw!r}")
    return int(raw)


def _non_blank(environ: Mapping[str, str], name: str, default: str) -> str:
    value = environ.get(name)
    if value is None:
        return default
    if not value.strip():
        raise SettingsError(f"{name} is set but blank; unset it to use {default!r}")
    return value
