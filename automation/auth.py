"""Bearer tokens with scopes: `read` for GETs, `operate:<env>` or `operate:*` for operations,
`approve:<env>` or `approve:*` to apply a preview's plan where approval is required.

Every configured token is compared with `hmac.compare_digest` (no early exit, so the time taken
does not say which token nearly matched). Tokens are never logged; the caller is known by the
token's name. With no tokens configured the API is open (settings allow that on loopback only).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, status

from automation.settings import TokenSpec

CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    name: str | None
    scopes: frozenset[str]
    open_access: bool = False

    def may_read(self) -> bool:
        return self.open_access or "read" in self.scopes

    def may_operate(self, environment: str) -> bool:
        return (
            self.open_access
            or "operate:*" in self.scopes
            or f"operate:{environment}" in self.scopes
        )

    def may_approve(self, environment: str) -> bool:
        return (
            self.open_access
            or "approve:*" in self.scopes
            or f"approve:{environment}" in self.scopes
        )

    def require_read(self) -> None:
        if not self.may_read():
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"token {self.name!r} lacks the 'read' scope"
            )

    def require_operate(self, environment: str) -> None:
        if not self.may_operate(environment):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"token {self.name!r} lacks the scope 'operate:{environment}' (or 'operate:*')",
            )


OPEN = Caller(name=None, scopes=frozenset(), open_access=True)


class Authenticator:
    def __init__(self, tokens: list[TokenSpec]) -> None:
        self._tokens = [(spec.token.get_secret_value().encode(), spec) for spec in tokens]

    @property
    def open_access(self) -> bool:
        return not self._tokens

    def identify(self, authorization: str | None) -> Caller:
        if self.open_access:
            return OPEN
        if not authorization:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing credentials: send 'Authorization: Bearer <token>'",
                headers=CHALLENGE,
            )
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "malformed credentials: send 'Authorization: Bearer <token>'",
                headers=CHALLENGE,
            )
        given = credentials.strip().encode()
        found: TokenSpec | None = None
        for secret, spec in self._tokens:
            if hmac.compare_digest(secret, given):
                found = spec
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", headers=CHALLENGE
            )
        return Caller(name=found.name, scopes=frozenset(found.scopes))
