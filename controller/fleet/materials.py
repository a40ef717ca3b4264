"""What is loaded on each printer now: one owner, each change recorded with its time and who made it.

Spools change during the day, so the materials a printer can print now are run-time state, not config.
The scheduler, the submit check and the API read them here. A printer's config `materials` is only the
starting point while it has no record; after a restart its last record counts (table material_loads).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.config import PrinterConfig
from controller.core.errors import NotFound
from controller.store import AsyncStore

log = logging.getLogger(__name__)

# A material is one short word as slicers and spool labels write it: PLA, PETG, PA12-CF, PLA+, TPU95A.
# Any case is taken and kept upper-case, as the config and the scheduler compare them.
MATERIAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9+._-]{0,31}$"
_MATERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]{0,31}")
# A multi-material unit holds a handful of spools; more than this is a mistake, not a printer.
MAX_MATERIALS = 16
MAX_HISTORY = 1000


def normalise(materials: Iterable[str]) -> tuple[str, ...]:
    """Upper-case, without repeats, in the order given; ValueError saying which one is not a material."""
    out: dict[str, None] = {}
    for raw in materials:
        # Checked before upper-casing: str.upper() turns some non-ASCII letters into ASCII ones.
        if not _MATERIAL.fullmatch(raw):
            shown = raw if len(raw) <= 40 else raw[:40] + "…"
            raise ValueError(
                f"{shown!r} is not a material name: one word of letters, digits and + . _ -, "
                "at most 32 characters (PLA, PETG, PA12-CF)"
            )
        out[raw.upper()] = None
    if not out:
        raise ValueError("name at least one material")
    if len(out) > MAX_MATERIALS:
        raise ValueError(f"{len(out)} materials given; a printer holds at most {MAX_MATERIALS}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MaterialLoad:
    """Materials put on a printer, when, and by whom (the API token's name; None from the config)."""

    printer: str
    materials: tuple[str, ...]
    at: datetime
    by: str | None


# The SQL of table material_loads (schema 4): functions of a connection, run through the store's thread.


def insert_load(db: sqlite3.Connection, load: MaterialLoad) -> None:
    db.execute(
        "INSERT INTO material_loads(printer, materials, at, by) VALUES (?,?,?,?)",
        (load.printer, json.dumps(list(load.materials)), load.at.isoformat(), load.by),
    )


def _load(row: sqlite3.Row) -> MaterialLoad:
    return MaterialLoad(
        row["printer"], tuple(json.loads(row["materials"])), datetime.fromisoformat(row["at"]), row["by"]
    )


def latest_loads(db: sqlite3.Connection) -> dict[str, MaterialLoad]:
    """Each printer's last record (by insertion order: a clock stepped back cannot reorder them)."""
    rows = db.execute(
        "SELECT printer, materials, at, by FROM material_loads"
        " WHERE id IN (SELECT max(id) FROM material_loads GROUP BY printer)"
    ).fetchall()
    return {row["printer"]: _load(row) for row in rows}


def load_history(db: sqlite3.Connection, printer: str, limit: int) -> list[MaterialLoad]:
    """A printer's records, newest first."""
    rows = db.execute(
        "SELECT printer, materials, at, by FROM material_loads WHERE printer = ? ORDER BY id DESC LIMIT ?",
        (printer, limit),
    ).fetchall()
    return [_load(row) for row in rows]


class LoadedMaterials:
    """Each printer's loaded materials. Reads come from memory; a change is committed to the store
    before it counts (and before the caller is told), so a restart never forgets an answered load."""

    def __init__(self, loaded: Mapping[str, Sequence[str]], store: AsyncStore | None = None) -> None:
        self._loaded = {name: tuple(materials) for name, materials in loaded.items()}
        self._store = store  # None: in memory only (tests of the fleet without a store)

    @classmethod
    def from_config(cls, printers: Iterable[PrinterConfig]) -> LoadedMaterials:
        """In memory, each printer with its config `materials`."""
        return cls({p.name: p.materials for p in printers})

    @classmethod
    async def load(cls, store: AsyncStore, printers: Iterable[PrinterConfig]) -> LoadedMaterials:
        """The last recorded load of each printer; the config's materials where there is none."""
        configured = {p.name: p.materials for p in printers}
        recorded = await store.call(store.sync.read, latest_loads)
        loaded = {
            name: recorded[name].materials if name in recorded else tuple(materials)
            for name, materials in configured.items()
        }
        return cls(loaded, store)

    def add_printer(self, printer: str, configured: Sequence[str]) -> None:
        """A printer added at run time: its config's materials unless it already has an entry."""
        self._loaded.setdefault(printer, tuple(configured))

    def of(self, printer: str) -> tuple[str, ...]:
        """What is loaded on `printer` now (empty for a printer the farm does not know)."""
        return self._loaded.get(printer, ())

    async def change(self, printer: str, materials: Iterable[str], *, by: str | None) -> MaterialLoad:
        """Record that `materials` are now loaded on `printer`; NotFound for an unknown printer,
        ValueError for a list that is empty, too long or holds something that is not a material."""
        if printer not in self._loaded:
            raise NotFound(f"no printer named {printer!r}")
        load = MaterialLoad(printer, normalise(materials), datetime.now(UTC), by)
        if self._store is not None:
            store = self._store
            await store.call(store.sync.transact, lambda db: insert_load(db, load))
        was = self._loaded[printer]
        self._loaded[printer] = load.materials
        log.info(
            "printer=%s materials=%s was=%s by=%s",
            printer,
            "/".join(load.materials),
            "/".join(was),
            by,
        )
        return load

    async def history(self, printer: str, limit: int = 50) -> list[MaterialLoad]:
        """The recorded loads of `printer`, newest first; NotFound for an unknown printer."""
        if printer not in self._loaded:
            raise NotFound(f"no printer named {printer!r}")
        if self._store is None:
            return []
        store = self._store
        return await store.call(
            store.sync.read, lambda db: load_history(db, printer, min(limit, MAX_HISTORY))
        )
