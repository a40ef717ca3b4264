"""Printers out of service: an operator takes one out with a reason and brings it back later.

A printer in maintenance takes no new job (the scheduler skips it and a waiting job says why); a print
already running on it is left alone. The spell is stored (table maintenance, schema 5) before it counts,
so a restart keeps a printer out of service until an operator brings it back.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.core.errors import Conflict, NotFound
from controller.store import AsyncStore

log = logging.getLogger(__name__)

MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class MaintenanceSpell:
    """A printer out of service since `since`, why, and the API token's name that took it out."""

    printer: str
    reason: str
    since: datetime
    by: str | None


def check_reason(reason: str) -> str:
    """The reason without surrounding blanks; ValueError when empty, too long or holding control
    characters (it is shown in waiting reasons and log lines, one line each)."""
    text = reason.strip()
    if not text:
        raise ValueError("say why the printer is out of service (reason)")
    if len(text) > MAX_REASON:
        raise ValueError(f"reason is {len(text)} characters long; at most {MAX_REASON} are allowed")
    if any(not c.isprintable() for c in text):
        raise ValueError("reason must be one line of printable text")
    return text


# The SQL of table maintenance (schema 5), run on the store's thread.


def open_spells(db: sqlite3.Connection) -> dict[str, MaintenanceSpell]:
    rows = db.execute("SELECT printer, reason, since, by FROM maintenance WHERE ended_at IS NULL").fetchall()
    return {
        r["printer"]: MaintenanceSpell(r["printer"], r["reason"], datetime.fromisoformat(r["since"]), r["by"])
        for r in rows
    }


def _begin(db: sqlite3.Connection, spell: MaintenanceSpell) -> None:
    db.execute(
        "INSERT INTO maintenance(printer, reason, since, by) VALUES (?,?,?,?)",
        (spell.printer, spell.reason, spell.since.isoformat(), spell.by),
    )


def _end(db: sqlite3.Connection, printer: str, at: datetime, by: str | None) -> None:
    db.execute(
        "UPDATE maintenance SET ended_at = ?, ended_by = ? WHERE printer = ? AND ended_at IS NULL",
        (at.isoformat(), by, printer),
    )


class Maintenance:
    """Which printers are out of service. Reads from memory; a change is committed first."""

    def __init__(
        self,
        printers: Iterable[str],
        spells: Mapping[str, MaintenanceSpell] | None = None,
        store: AsyncStore | None = None,
    ) -> None:
        self._printers = set(printers)
        self._spells = dict(spells or {})
        self._store = store  # None: in memory only (tests of the fleet without a store)

    @classmethod
    async def load(cls, store: AsyncStore, printers: Iterable[str]) -> Maintenance:
        """The open spells from the store (also of printers no longer configured: kept for their return)."""
        spells = await store.call(store.sync.read, open_spells)
        return cls(printers, spells, store)

    def add_printer(self, name: str) -> None:
        """A printer added to the config at run time (a spell recorded before it left counts again)."""
        self._printers.add(name)

    def of(self, printer: str) -> MaintenanceSpell | None:
        """The open spell of `printer`, or None while it is in service."""
        return self._spells.get(printer) if printer in self._printers else None

    def reason(self, printer: str) -> str | None:
        spell = self.of(printer)
        return spell.reason if spell is not None else None

    async def begin(self, printer: str, reason: str, *, by: str | None) -> MaintenanceSpell:
        """Take `printer` out of service; NotFound for an unknown printer, Conflict when it is already
        out (the first reason stands), ValueError for a bad reason."""
        if printer not in self._printers:
            raise NotFound(f"no printer named {printer!r}")
        current = self._spells.get(printer)
        if current is not None:
            raise Conflict(
                f"printer {printer!r} is in maintenance already since {current.since:%Y-%m-%d %H:%M}Z"
            )
        spell = MaintenanceSpell(printer, check_reason(reason), datetime.now(UTC), by)
        if self._store is not None:
            store = self._store
            await store.call(store.sync.transact, lambda db: _begin(db, spell))
        self._spells[printer] = spell
        log.info("printer=%s in maintenance by=%s: %s", printer, by, spell.reason)
        return spell

    async def end(self, printer: str, *, by: str | None) -> MaintenanceSpell:
        """Bring `printer` back into service; NotFound for an unknown printer, Conflict when in service."""
        if printer not in self._printers:
            raise NotFound(f"no printer named {printer!r}")
        spell = self._spells.get(printer)
        if spell is None:
            raise Conflict(f"printer {printer!r} is not in maintenance")
        if self._store is not None:
            store = self._store
            at = datetime.now(UTC)
            await store.call(store.sync.transact, lambda db: _end(db, printer, at, by))
        del self._spells[printer]
        log.info("printer=%s back in service by=%s (was out: %s)", printer, by, spell.reason)
        return spell
