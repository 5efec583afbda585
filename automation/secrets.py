"""Keeping secret values out of everything the service stores or shows.

The engine already blinds secret config values in its events and output (`[secret]`) and
sends secret property values as signature objects with no plaintext; this is the second line:
every known secret config value is replaced in text, and every secret signature object becomes
the plain marker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from automation.models import SECRET

SECRET_SIGNATURE_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIGNATURE = "1b47061264138c4ac30d75fd1eb44270"


def is_secret_object(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIGNATURE_KEY) == SECRET_SIGNATURE


def secret_leaves(value: str) -> list[str]:
    """The value itself and, for structured (JSON) config, every string inside it."""
    found = [value]
    try:
        parsed = json.loads(value)
    except ValueError:
        return found
    stack: list[Any] = [parsed]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.append(item)
    return found


class Redactor:
    """Replaces known secret values (longest first, so no fragment of one survives)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, SECRET)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with secret objects blinded and secret text replaced."""
        if isinstance(value, str):
            return self.text(value)
        if is_secret_object(value):
            return SECRET
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value
