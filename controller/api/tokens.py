"""Bearer tokens from the config, and who a presented token says the caller is."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from controller.config import Role, TokenConfig


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
