"""Bearer tokens, from the config and those an admin added at run time, and who a presented token says
the caller is."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from controller.accounting.roster import Roster, token_digest
from controller.config import Role, TokenConfig


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the token's name (never its secret) and role."""

    name: str
    role: Role


class TokenRegistry:
    """Looks tokens up in constant time per token; never logs or returns a secret.

    Both kinds are compared as sha256 digests: the presented token is hashed once, and each known
    digest is compared with hmac.compare_digest, all of them, so the time says nothing of which matched.
    `roster` holds the run-time tokens (and members), changed by an admin through the API.
    """

    def __init__(self, tokens: list[TokenConfig], roster: Roster) -> None:
        self._tokens = [(token_digest(t.token), Caller(t.name, t.role)) for t in tokens]
        self.roster = roster

    def caller(self, presented: str) -> Caller | None:
        found = None
        digest = token_digest(presented)
        for known, caller in self._tokens:
            if hmac.compare_digest(known, digest):
                found = caller
        for known, name, role in self.roster.digests:  # one tuple, swapped whole after each change
            if hmac.compare_digest(known, digest):
                found = Caller(name, role)
        return found
