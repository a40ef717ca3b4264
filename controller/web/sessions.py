"""Who is signed in on the web page: server-side sessions in memory, each with its role and CSRF token.

A browser holds only a random session id in an HttpOnly, SameSite=Strict cookie; the role, the name and
the CSRF token stay here. A restart signs everyone out, which a workshop page can afford and which keeps
no secret on disk. The JSON API admits a session too (controller/api/auth.py), so the page's own scripts,
its uploads and the event stream use the API as it is, with the CSRF token in a header on every request
that changes something.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request

from controller.accounting.roster import Roster, password_matches
from controller.api.tokens import Caller
from controller.config import Role
from controller.config.members import MemberConfig

SESSION_COOKIE = "farmctl_session"
LOGIN_COOKIE = "farmctl_login"  # the sign-in form's own CSRF value (double submit), before any session
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
IDLE_S = 12 * 3600  # a workshop shift: a page left open overnight signs in again
LIFETIME_S = 7 * 24 * 3600
MAX_SESSIONS = 1000  # beyond that the session closest to its expiry goes
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MEMBER_ROLE = Role.OPERATOR  # a member queues, cancels and clears beds; tokens carry their own role
FAILURES_PER_MINUTE = 10  # sign-in failures one address may make before it waits
_MAX_ADDRESSES = 1024


@dataclass(slots=True)
class WebSession:
    """One signed-in browser: `caller` is the token's name and role, or a member's name as operator."""

    id: str
    caller: Caller
    csrf: str
    via: str  # "token" or "member": how it signed in, for the log and the page
    started: float
    expires: float


class SessionStore:
    """Sessions by id, bounded in number, each expiring IDLE_S after its last use (LIFETIME_S at most)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, limit: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._limit = limit
        self._sessions: dict[str, WebSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, caller: Caller, via: str) -> WebSession:
        """A new session for `caller`, with a fresh id and CSRF token."""
        now = self._clock()
        self._purge(now)
        while len(self._sessions) >= self._limit:
            oldest = min(self._sessions.values(), key=lambda s: s.expires)
            del self._sessions[oldest.id]
        session = WebSession(
            id=secrets.token_urlsafe(32),
            caller=caller,
            csrf=secrets.token_urlsafe(32),
            via=via,
            started=now,
            expires=now + IDLE_S,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session of that id, its expiry moved on; None when unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        now = self._clock()
        if session is None:
            return None
        if session.expires <= now:
            del self._sessions[session_id]
            return None
        session.expires = min(now + IDLE_S, session.started + LIFETIME_S)
        return session

    def close(self, session_id: str | None) -> WebSession | None:
        """End the session (sign-out); the one ended, if it was live."""
        return self._sessions.pop(session_id, None) if session_id else None

    def end(self, via: str, name: str) -> int:
        """End every session `name` signed in to with a `via` ("token" or "member"): that token was
        revoked, or that member removed or given another password. How many ended."""
        gone = [s.id for s in self._sessions.values() if s.via == via and s.caller.name == name]
        for session_id in gone:
            del self._sessions[session_id]
        return len(gone)

    def _purge(self, now: float) -> None:
        for gone in [s.id for s in self._sessions.values() if s.expires <= now]:
            del self._sessions[gone]


class SignInLimiter:
    """Counts refused sign-ins per client address per minute, so a password cannot be guessed at speed."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[float, int]] = {}

    def blocked(self, address: str) -> bool:
        start, count = self._failures.get(address, (0.0, 0))
        return count >= FAILURES_PER_MINUTE and self._clock() - start < 60.0

    def failed(self, address: str) -> None:
        now = self._clock()
        start, count = self._failures.get(address, (now, 0))
        if now - start >= 60.0:
            start, count = now, 0
        if address not in self._failures and len(self._failures) >= _MAX_ADDRESSES:
            self._failures.pop(next(iter(self._failures)))
        self._failures[address] = (start, count + 1)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


class MemberPasswords:
    """The members who may sign in on the page: farmctl.toml's (password_file) and the run-time ones
    (an scrypt hash in the store, through the roster).

    Every check runs one scrypt, whoever is named, so the answer's time says nothing of who exists or
    where they are defined; it runs off the event loop.
    """

    def __init__(self, members: list[MemberConfig], roster: Roster) -> None:
        self._passwords = {m.name: m.password.encode() for m in members if m.password is not None}
        self._roster = roster

    def __bool__(self) -> bool:
        return bool(self._passwords) or self._roster.any_password()

    async def caller(self, name: str, password: str) -> Caller | None:
        hashed = self._roster.password_of(name)
        stored_ok = await asyncio.to_thread(password_matches, hashed, password)
        known = self._passwords.get(name)
        fixed_ok = hmac.compare_digest(known or b"\0" * 32, password.encode()) and known is not None
        return Caller(name, MEMBER_ROLE) if stored_ok or fixed_ok else None


def sessions_of(app: FastAPI) -> SessionStore | None:
    """The app's session store; None when the web page is not installed on it."""
    store = getattr(app.state, "web_sessions", None)
    return store if isinstance(store, SessionStore) else None


def session_caller(request: Request) -> Caller | None:
    """Who the request's session cookie says is calling; None without a live session.

    A request that may change something must carry the session's CSRF token in CSRF_HEADER (403
    otherwise): the cookie alone would let another page's form act with this browser's rights.
    """
    store = sessions_of(request.app)
    session = store.get(request.cookies.get(SESSION_COOKIE)) if store is not None else None
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
        request.headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()
    ):
        raise HTTPException(403, f"missing or wrong {CSRF_HEADER}: reload the page and try again")
    return session.caller
