"""Run-time API tokens and members: the ones an admin adds and removes through the API or the page, kept
in the store beside the fixed ones of farmctl.toml (which only an edit of the file changes).

Every request asks which token it carries, so the tokens are held in memory as sha256 digests and swapped
for a new tuple after each change, before the change is answered: a revoked token fails from the next
request on. Members are held in memory too (sign-in, the upload form's owners); the quota check at submit
reads them from the store in the same read as the month's usage (`stored_members`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Literal, Self

from controller.config import Config, Role
from controller.config.members import MemberConfig
from controller.core.errors import Conflict, NotFound
from controller.store import AsyncStore

log = logging.getLogger(__name__)

MAX_TOKENS = 256  # every request's token is compared with each of them
MAX_MEMBERS = 10_000
PASSWORD_MIN, PASSWORD_MAX = 8, 256
# scrypt at n=2^14, r=8: 16 MiB and ~65 ms on a desktop core, a few hundred on a Pi; a sign-in is rare
# and rate-limited, a guess at the stored hash is expensive.
_N, _R, _P, _LEN = 2**14, 8, 1, 32
_DUMMY = f"scrypt${_N}${_R}${_P}$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="
Source = Literal["config", "store"]
Via = Literal["token", "member"]


class FromConfig(Conflict):
    """The token or member is defined in farmctl.toml, which the API does not change (409)."""


class Keep(Enum):
    """A field a change leaves as it is (PATCH without that key)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """An API token as an admin sees it: never its secret."""

    name: str
    role: Role
    source: Source
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class MemberEntry:
    """A member as an admin sees it: whether a password is set, never the password or its hash."""

    name: str
    quota_g: float | None
    quota_cost: float | None
    password: bool
    source: Source
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


def token_digest(secret: str) -> bytes:
    """The sha256 of a token's secret: what is stored and compared, never the secret itself."""
    return hashlib.sha256(secret.encode()).digest()


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` with a fresh salt (base64 parts)."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def password_matches(stored: str | None, password: str) -> bool:
    """Whether `password` gives `stored`; with None an scrypt still runs, so the time says nothing."""
    try:
        _, n, r, p, salt, key = (stored or _DUMMY).split("$")
        expected = base64.b64decode(key)
        found = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:  # a damaged row: nobody signs in with it
        return False
    return hmac.compare_digest(found, expected) and stored is not None


def _now() -> datetime:
    return datetime.now(UTC)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def stored_members(db: sqlite3.Connection) -> list[MemberConfig]:
    """The run-time members with their quotas (for the quota check at submit)."""
    rows = db.execute("SELECT name, quota_g, quota_cost FROM members ORDER BY name")
    # Checked when they were stored: no need to validate thousands of rows again per submission.
    return [MemberConfig.model_construct(name=r[0], quota_g=r[1], quota_cost=r[2]) for r in rows]


def _member_row(row: sqlite3.Row) -> tuple[MemberEntry, str | None]:
    entry = MemberEntry(
        name=row["name"],
        quota_g=row["quota_g"],
        quota_cost=row["quota_cost"],
        password=row["password_scrypt"] is not None,
        source="store",
        created_at=_dt(row["created_at"]),
        created_by=row["created_by"],
        updated_at=_dt(row["updated_at"]),
        updated_by=row["updated_by"],
    )
    return entry, row["password_scrypt"]


class Roster:
    """Run-time tokens and members: in the store, mirrored in memory, each change logged once."""

    def __init__(self, config: Config, store: AsyncStore) -> None:
        self._store = store
        self._config_tokens = {t.name: t.role for t in config.api.tokens}
        self._config_members = {m.name: m for m in config.members}
        self._tokens: dict[str, tuple[bytes, TokenEntry]] = {}
        self.digests: tuple[tuple[bytes, str, Role], ...] = ()  # what each request compares with
        self._members: dict[str, MemberEntry] = {}
        self._passwords: dict[str, str] = {}
        self._ended: list[Callable[[Via, str], object]] = []

    def load_at_start(self) -> Self:
        """Read the store on this thread: only at start, before any task uses the store."""
        db = self._store.sync
        db.read(self._read_all)
        return self

    def on_ended(self, callback: Callable[[Via, str], object]) -> None:
        """Call `callback(via, name)` when what signed someone in is gone (token revoked, member
        removed, password changed): their web sessions end."""
        self._ended.append(callback)

    # --- reading (in memory) ------------------------------------------------------------------------

    def tokens(self) -> list[TokenEntry]:
        """Every token: farmctl.toml's first, then the run-time ones, each by name."""
        fixed = [TokenEntry(n, r, "config") for n, r in sorted(self._config_tokens.items())]
        return fixed + [entry for _, entry in sorted(self._tokens.values(), key=lambda t: t[1].name)]

    def members(self) -> list[MemberEntry]:
        """Every member: farmctl.toml's first, then the run-time ones, each by name."""
        fixed = [
            MemberEntry(m.name, m.quota_g, m.quota_cost, m.password is not None, "config")
            for m in sorted(self._config_members.values(), key=lambda m: m.name)
        ]
        return fixed + sorted(self._members.values(), key=lambda m: m.name)

    def member_names(self) -> list[str]:
        return [m.name for m in self.members()]

    def password_of(self, name: str) -> str | None:
        """The run-time member's scrypt hash; None when they have none or are not one."""
        return self._passwords.get(name)

    def any_password(self) -> bool:
        """Whether some run-time member may sign in with a password."""
        return bool(self._passwords)

    # --- tokens -------------------------------------------------------------------------------------

    async def add_token(self, name: str, role: Role, *, by: str) -> tuple[TokenEntry, str]:
        """A new token and its secret (shown once: only its digest is kept)."""
        self._not_in_config(name, token=True)
        secret = secrets.token_urlsafe(32)
        now = _now()
        entry = TokenEntry(name, role, "store", now, by)

        def insert(db: sqlite3.Connection) -> None:
            active = db.execute("SELECT name FROM api_tokens WHERE revoked_at IS NULL").fetchall()
            if name in {r[0] for r in active}:
                raise Conflict(f"a token named {name!r} exists already: revoke it first or pick another name")
            if len(active) >= MAX_TOKENS:
                raise Conflict(f"there are {MAX_TOKENS} run-time tokens already: revoke one first")
            db.execute(
                "INSERT INTO api_tokens(name, role, secret_sha256, created_at, created_by)"
                " VALUES (?,?,?,?,?)",
                (name, role.value, token_digest(secret).hex(), now.isoformat(), by),
            )

        await self._store.call(self._store.sync.transact, insert)
        self._tokens[name] = (token_digest(secret), entry)
        self._publish_tokens()
        log.info("admin: token=%s role=%s added by=%s", name, role, by)
        return entry, secret

    async def revoke_token(self, name: str, *, by: str) -> TokenEntry:
        """Revoke a run-time token: it fails from the next request on; its web sessions end."""
        self._not_in_config(name, token=True)
        found = self._tokens.get(name)
        if found is None:
            raise NotFound(f"no run-time token named {name!r}")

        def revoke(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE name = ? AND revoked_at IS NULL",
                (_now().isoformat(), by, name),
            )

        await self._store.call(self._store.sync.transact, revoke)
        self._tokens.pop(name, None)  # a revocation of the same token at the same moment took it already
        self._publish_tokens()
        self._end("token", name)
        log.info("admin: token=%s revoked by=%s", name, by)
        return found[1]

    # --- members ------------------------------------------------------------------------------------

    async def add_member(
        self,
        name: str,
        *,
        quota_g: float | None,
        quota_cost: float | None,
        password: str | None,
        by: str,
    ) -> MemberEntry:
        """A new run-time member, with a password (scrypt) if one is given."""
        self._not_in_config(name, token=False)
        hashed = None if password is None else await self._hash(password)
        now = _now()

        def insert(db: sqlite3.Connection) -> sqlite3.Row:
            if db.execute("SELECT 1 FROM members WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"a member named {name!r} exists already")
            if db.execute("SELECT COUNT(*) FROM members").fetchone()[0] >= MAX_MEMBERS:
                raise Conflict(f"there are {MAX_MEMBERS} run-time members already: remove one first")
            db.execute(
                "INSERT INTO members(name, quota_g, quota_cost, password_scrypt, created_at, created_by)"
                " VALUES (?,?,?,?,?,?)",
                (name, quota_g, quota_cost, hashed, now.isoformat(), by),
            )
            row: sqlite3.Row = db.execute("SELECT * FROM members WHERE name = ?", (name,)).fetchone()
            return row

        entry = self._keep_member(await self._store.call(self._store.sync.transact, insert))
        log.info(
            "admin: member=%s added quota_g=%s quota_cost=%s password=%s by=%s",
            name, quota_g, quota_cost, "set" if hashed else "none", by,
        )  # fmt: skip
        return entry

    async def change_member(
        self,
        name: str,
        *,
        quota_g: float | Keep | None = KEEP,
        quota_cost: float | Keep | None = KEEP,
        password: str | Keep | None = KEEP,
        by: str,
    ) -> MemberEntry:
        """Change a run-time member's quotas or password (None clears one); a changed password ends
        the member's web sessions."""
        self._not_in_config(name, token=False)
        if name not in self._members:
            raise NotFound(f"no run-time member named {name!r}")
        hashed = password if password is None or isinstance(password, Keep) else await self._hash(password)
        sets = {"quota_g": quota_g, "quota_cost": quota_cost, "password_scrypt": hashed}
        changed = {k: v for k, v in sets.items() if not isinstance(v, Keep)}

        def update(db: sqlite3.Connection) -> sqlite3.Row:
            assignments = "".join(f"{column} = ?, " for column in changed)  # our own column names
            cur = db.execute(
                f"UPDATE members SET {assignments}updated_at = ?, updated_by = ? WHERE name = ?",  # noqa: S608
                (*changed.values(), _now().isoformat(), by, name),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no run-time member named {name!r}")
            row: sqlite3.Row = db.execute("SELECT * FROM members WHERE name = ?", (name,)).fetchone()
            return row

        entry = self._keep_member(await self._store.call(self._store.sync.transact, update))
        if "password_scrypt" in changed:
            self._end("member", name)
        shown = {k: v for k, v in changed.items() if k != "password_scrypt"}
        if "password_scrypt" in changed:
            shown["password"] = "set" if hashed else "cleared"
        log.info(
            "admin: member=%s changed %s by=%s", name, " ".join(f"{k}={v}" for k, v in shown.items()), by
        )
        return entry

    async def remove_member(self, name: str, *, by: str) -> MemberEntry:
        """Remove a run-time member; their jobs keep the owner name; their web sessions end."""
        self._not_in_config(name, token=False)
        found = self._members.get(name)
        if found is None:
            raise NotFound(f"no run-time member named {name!r}")
        await self._store.call(
            self._store.sync.transact, lambda db: db.execute("DELETE FROM members WHERE name = ?", (name,))
        )
        self._members.pop(name, None)
        self._passwords.pop(name, None)
        self._end("member", name)
        log.info("admin: member=%s removed by=%s", name, by)
        return found

    # --- inside -------------------------------------------------------------------------------------

    def _not_in_config(self, name: str, *, token: bool) -> None:
        if token and name in self._config_tokens:
            raise FromConfig(
                f"token {name!r} is defined in farmctl.toml ([[api.tokens]]): edit the file to change it"
            )
        if not token and name in self._config_members:
            raise FromConfig(
                f"member {name!r} is defined in farmctl.toml ([[members]]): edit the file to change it"
            )

    @staticmethod
    async def _hash(password: str) -> str:
        return await asyncio.to_thread(hash_password, password)  # 16 MiB of work: off the loop

    def _read_all(self, db: sqlite3.Connection) -> None:
        # farmctl.toml may have gained a name added here before: the file's wins, once said in the log.
        for row in db.execute(
            "SELECT name, role, secret_sha256, created_at, created_by FROM api_tokens"
            " WHERE revoked_at IS NULL"
        ):
            if row[0] in self._config_tokens:
                log.warning(
                    "admin: token=%s is in farmctl.toml now: the one added at run time is unused", row[0]
                )
                continue
            entry = TokenEntry(row[0], Role(row[1]), "store", _dt(row[3]), row[4])
            self._tokens[row[0]] = (bytes.fromhex(row[2]), entry)
        self._publish_tokens()
        for row in db.execute("SELECT * FROM members"):
            if row["name"] in self._config_members:
                log.warning(
                    "admin: member=%s is in farmctl.toml now: the one added at run time is unused",
                    row["name"],
                )
                continue
            self._keep_member(row)

    def _keep_member(self, row: sqlite3.Row) -> MemberEntry:
        entry, hashed = _member_row(row)
        self._members[entry.name] = entry
        if hashed is None:
            self._passwords.pop(entry.name, None)
        else:
            self._passwords[entry.name] = hashed
        return entry

    def _publish_tokens(self) -> None:
        self.digests = tuple((digest, e.name, e.role) for digest, e in self._tokens.values())

    def _end(self, via: Via, name: str) -> None:
        for callback in self._ended:
            callback(via, name)
