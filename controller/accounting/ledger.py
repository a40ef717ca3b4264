"""The accountant's tables (schema 4): plug meters, marks of running jobs, and each job's account.

Functions of a sqlite3 connection, called through the store's thread (`Store.transact` / `Store.read`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from controller.accounting.figures import Figures, Mark, Phase
from controller.accounting.meter import MeterState
from controller.accounting.tariffs import JobCosts

# The stored cursor of the accountant in job_events.
ACCOUNTING_CURSOR = "accounting"


@dataclass(frozen=True, slots=True)
class Account:
    """A finished job's measured figures and what they cost (job_accounts)."""

    job_id: int
    energy_kwh: float | None = None
    heatup_kwh: float | None = None
    printing_kwh: float | None = None
    paused_kwh: float | None = None
    energy_source: str | None = None
    gap_start_s: float | None = None
    gap_end_s: float | None = None
    filament_est_g: float | None = None
    filament_measured_g: float | None = None
    material_drift: bool = False
    waste_g: float | None = None
    waste_kwh: float | None = None
    cost: float | None = None
    cost_energy: float | None = None
    cost_material: float | None = None
    cost_machine: float | None = None
    co2_g: float | None = None
    accounted_at: datetime | None = None

    @property
    def filament_g(self) -> float | None:
        """Measured grams where a scale weighed them, else the slicer's estimate."""
        return self.filament_measured_g if self.filament_measured_g is not None else self.filament_est_g


_COLUMNS = [f.name for f in fields(Account)]
# Column names are the dataclass's own, never input.
_INSERT_ACCOUNT = "INSERT OR REPLACE INTO job_accounts ({}) VALUES ({})".format(  # noqa: S608
    ", ".join(_COLUMNS), ", ".join("?" * len(_COLUMNS))
)
_INSERT_ATTEMPT = "INSERT OR REPLACE INTO job_attempts ({}, attempt) VALUES ({})".format(  # noqa: S608
    ", ".join(_COLUMNS), ", ".join("?" * (len(_COLUMNS) + 1))
)


def _account(row: sqlite3.Row) -> Account:
    values = {name: row[name] for name in _COLUMNS}
    values["material_drift"] = bool(values["material_drift"])
    values["accounted_at"] = datetime.fromisoformat(row["accounted_at"])
    return Account(**values)


def load_meters(db: sqlite3.Connection) -> dict[str, MeterState]:
    rows = db.execute("SELECT sensor, raw_kwh, total_kwh, at FROM meters")
    return {r[0]: MeterState(r[1], r[2], datetime.fromisoformat(r[3]).timestamp()) for r in rows}


def save_meters(db: sqlite3.Connection, states: Mapping[str, MeterState]) -> None:
    db.executemany(
        "INSERT INTO meters (sensor, raw_kwh, total_kwh, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(sensor) DO UPDATE SET raw_kwh = excluded.raw_kwh,"
        " total_kwh = excluded.total_kwh, at = excluded.at",
        [
            (sensor, s.raw_kwh, s.total_kwh, datetime.fromtimestamp(s.at, UTC).isoformat())
            for sensor, s in states.items()
        ],
    )


def add_marks(db: sqlite3.Connection, job_id: int, marks: Iterable[Mark], *, resolved: bool) -> None:
    """Store marks as taken (`resolved` False) or once read (True; replacing the taken one)."""
    db.executemany(
        "INSERT OR REPLACE INTO job_marks (job_id, seq, at, phase, energy_kwh, gap_s, weight_g,"
        " co2_g_per_kwh, resolved) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                job_id,
                m.seq,
                m.at.isoformat(),
                str(m.phase),
                m.energy_kwh,
                m.gap_s,
                m.weight_g,
                m.co2_g_per_kwh,
                int(resolved),
            )
            for m in marks
        ],
    )


def add_read_marks(
    db: sqlite3.Connection, job_id: int, marks: Iterable[Mark], states: Mapping[str, MeterState]
) -> None:
    """Store read marks with the plug totals they were read from, so a restart continues from these."""
    add_marks(db, job_id, marks, resolved=True)
    save_meters(db, states)


def open_marks(db: sqlite3.Connection) -> dict[int, list[tuple[Mark, bool]]]:
    """Every job's stored marks (with whether each was resolved), by job, in seq order."""
    out: dict[int, list[tuple[Mark, bool]]] = {}
    rows = db.execute(
        "SELECT job_id, seq, at, phase, energy_kwh, gap_s, weight_g, co2_g_per_kwh, resolved"
        " FROM job_marks ORDER BY job_id, seq"
    )
    for r in rows:
        mark = Mark(r[1], datetime.fromisoformat(r[2]), Phase(r[3]), r[4], r[5], r[6], r[7])
        out.setdefault(r[0], []).append((mark, bool(r[8])))
    return out


def write_account(db: sqlite3.Connection, account: Account) -> Account:
    """Store a finished print's account; a job printed again (retried) adds to its earlier attempts.

    The marks of the print are deleted: the account is what is kept.
    """
    (attempt,) = db.execute("SELECT attempts FROM jobs WHERE id = ?", (account.job_id,)).fetchone()
    db.execute(_INSERT_ATTEMPT, [*_values(account), attempt])
    earlier = account_of(db, account.job_id)
    if earlier is not None:
        account = _added(earlier, account)
    db.execute(_INSERT_ACCOUNT, _values(account))
    db.execute("DELETE FROM job_marks WHERE job_id = ?", (account.job_id,))
    return account


def _values(account: Account) -> list[object]:
    values: list[object] = [getattr(account, name) for name in _COLUMNS]
    values[_COLUMNS.index("material_drift")] = int(account.material_drift)
    values[_COLUMNS.index("accounted_at")] = (account.accounted_at or datetime.now(UTC)).isoformat()
    return values


def attempt_account(db: sqlite3.Connection, job_id: int, since: datetime) -> Account | None:
    """The figures of the one attempt of a job accounted at or after `since` (its end), not summed: a
    retried job's `job` points each carry their own attempt, so sums over points count each once."""
    row = db.execute(
        "SELECT * FROM job_attempts WHERE job_id = ? AND accounted_at >= ? ORDER BY attempt LIMIT 1",
        (job_id, since.isoformat()),
    ).fetchone()
    return _account(row) if row is not None else None


# Summed over the attempts of a retried job; the rest describes the last attempt.
_SUMMED = (
    "energy_kwh",
    "heatup_kwh",
    "printing_kwh",
    "paused_kwh",
    "waste_g",
    "waste_kwh",
    "cost",
    "cost_energy",
    "cost_material",
    "cost_machine",
    "co2_g",
)


def _added(earlier: Account, latest: Account) -> Account:
    values = {name: getattr(latest, name) for name in _COLUMNS}
    for name in _SUMMED:
        a, b = getattr(earlier, name), getattr(latest, name)
        values[name] = b if a is None else a if b is None else a + b
    return Account(**values)


def account_of(db: sqlite3.Connection, job_id: int) -> Account | None:
    row = db.execute("SELECT * FROM job_accounts WHERE job_id = ?", (job_id,)).fetchone()
    return _account(row) if row is not None else None


def accounts_for(db: sqlite3.Connection, job_ids: Iterable[int]) -> dict[int, Account]:
    """The accounts of these jobs (those that have one)."""
    ids = list(job_ids)
    out: dict[int, Account] = {}
    for i in range(0, len(ids), 500):  # SQLite's bound-parameter limit
        chunk = ids[i : i + 500]
        rows = db.execute(
            f"SELECT * FROM job_accounts WHERE job_id IN ({', '.join('?' for _ in chunk)})",  # noqa: S608
            chunk,
        )
        out.update((r["job_id"], _account(r)) for r in rows)
    return out


def account_from(
    job_id: int, figures: Figures, source: str | None, at: datetime, priced: JobCosts
) -> Account:
    """An Account from a print's measured figures and what they cost."""
    return Account(
        job_id=job_id,
        energy_kwh=figures.energy_kwh,
        heatup_kwh=figures.heatup_kwh,
        printing_kwh=figures.printing_kwh,
        paused_kwh=figures.paused_kwh,
        energy_source=source,
        gap_start_s=figures.gap_start_s,
        gap_end_s=figures.gap_end_s,
        filament_est_g=figures.filament_est_g,
        filament_measured_g=figures.filament_measured_g,
        material_drift=figures.material_drift,
        waste_g=figures.waste_g,
        waste_kwh=figures.waste_kwh,
        cost=priced.cost,
        cost_energy=priced.cost_energy,
        cost_material=priced.cost_material,
        cost_machine=priced.cost_machine,
        co2_g=priced.co2_g,
        accounted_at=at,
    )
