"""Bearer tokens with roles: 401 without or with an unknown token, 403 when the role is too low."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.api.services import TokensDep
from controller.api.tokens import Caller, TokenRegistry
from controller.config import Role

__all__ = ["Caller", "TokenRegistry", "require"]

_bearer = HTTPBearer(auto_error=False, description="A token from [[api.tokens]] in farmctl.toml")


def require(role: Role) -> Callable[..., Caller]:
    """A dependency admitting callers whose role is at least `role`."""

    def check(
        tokens: TokensDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        caller = tokens.caller(credentials.credentials)
        if caller is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        if caller.role.rank < role.rank:
            raise HTTPException(403, f"role {caller.role} may not do this; needs {role}")
        return caller

    return check
