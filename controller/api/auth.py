"""Bearer tokens with roles: 401 without or with an unknown token, 403 when the role is too low."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.config import Role, TokenConfig

_bearer = HTTPBearer(auto_error=False, description="A token from [[api.tokens]] in farmctl.toml")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the token's name (never its secret) and role."""

    name: str
    role: Role


class TokenRegistry:
    """Looks tokens up in constant time per token; never logs or returns a secret."""

    def __init__(self, tokens: list[TokenConfig]) -> None:
        self._tokens = [(t.token.encode(), Caller(t.name, t.role)) for t in tokens]

    def caller(self, presented: str) -> Caller | None:
        found = None
        raw = presented.encode()
        for secret, caller in self._tokens:
            if hmac.compare_digest(secret, raw):
                found = caller
        return found


def require(role: Role) -> Callable[..., Caller]:
    """A dependency admitting callers whose role is at least `role`."""

    def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Caller:
        registry: TokenRegistry = request.app.state.tokens
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        caller = registry.caller(credentials.credentials)
        if caller is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        if caller.role.rank < role.rank:
            raise HTTPException(403, f"role {caller.role} may not do this; needs {role}")
        return caller

    return check
