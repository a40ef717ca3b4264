"""Bearer tokens with roles: 401 without or with an unknown token, 403 when the role is too low.

Without a bearer header, the web page's session cookie counts (with its CSRF header on requests that
change something), so the page, its uploads and its event stream use the API as it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.api.services import TokensDep
from controller.api.tokens import Caller, TokenRegistry
from controller.config import Role
from controller.web.sessions import session_caller

__all__ = ["Caller", "TokenRegistry", "require"]

_bearer = HTTPBearer(
    auto_error=False, description="A token from [[api.tokens]] in farmctl.toml, or one an admin added"
)


def require(role: Role) -> Callable[..., Caller]:
    """A dependency admitting callers whose role is at least `role`."""

    def check(
        request: Request,
        tokens: TokensDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            caller = session_caller(request)  # 403 for a session request without its CSRF token
            if caller is None:
                raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        else:
            caller = tokens.caller(credentials.credentials)
        if caller is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        if caller.role.rank < role.rank:
            raise HTTPException(403, f"role {caller.role} may not do this; needs {role}")
        return caller

    return check
