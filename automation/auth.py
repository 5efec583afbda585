"""Bearer tokens with scopes: `read` for GETs, `operate:<env>` or `operate:*` for operations,
`approve:<env>` or `approve:*` to apply a preview's plan where approval is required.

The dashboard's login (`automation/dashboard.py`) keeps the token in an HttpOnly, SameSite=Strict
cookie, accepted wherever the header is (EventSource cannot send a header); the header wins when
both are sent.

Every configured token is compared with `hmac.compare_digest` (no early exit, so the time taken
does not say which token nearly matched). Tokens are never logged; the caller is known by the
token's name. With no tokens configured the API is open (settings allow that on loopback only).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import HTTPException, status
from starlette.requests import cookie_parser

from automation.settings import TokenSpec

CHALLENGE = {"WWW-Authenticate": "Bearer"}
SESSION_COOKIE = "automation_session"
"""The dashboard's login cookie: the token, base64url-encoded (a cookie value may not hold
every character a token may)."""


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

    def identify_headers(self, headers: Mapping[str, str]) -> Caller:
        """The caller of a request: its Authorization header, else the session cookie."""
        authorization = headers.get("authorization")
        if authorization is None:
            session = session_cookie(headers)
            if session is not None:
                return self._identify_session(session)
        return self.identify(authorization)

    def _identify_session(self, session: str) -> Caller:
        if self.open_access:
            return OPEN
        try:
            given = base64.urlsafe_b64decode(session.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error):
            given = b""
        found = self._match(given)
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "the session's token is unknown or revoked: log in again",
                headers=CHALLENGE,
            )
        return Caller(name=found.name, scopes=frozenset(found.scopes))

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
        found = self._match(credentials.strip().encode())
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", headers=CHALLENGE
            )
        return Caller(name=found.name, scopes=frozenset(found.scopes))

    def _match(self, given: bytes) -> TokenSpec | None:
        found: TokenSpec | None = None
        for secret, spec in self._tokens:
            if hmac.compare_digest(secret, given):
                found = spec
        return found


def session_cookie(headers: Mapping[str, str]) -> str | None:
    """The session cookie's value, if the request carries one."""
    cookies = headers.get("cookie")
    return cookie_parser(cookies).get(SESSION_COOKIE) if cookies else None


def session_value(token: str) -> str:
    """What the session cookie holds for `token`."""
    return base64.urlsafe_b64encode(token.encode()).decode("ascii")
