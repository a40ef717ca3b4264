"""Finished jobs and their accounts written straight into a store, for report, quota and passport tests
(the accountant that fills job_accounts in the daemon is tested on its own)."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime
from typing import Any

from controller.store import Store


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def add_job(
    store: Store,
    *,
    owner: str,
    state: str,
    finished: datetime | None,
    started: datetime | None = None,
    printer: str | None = "mk4-1",
    material: str | None = "PLA",
    filament_g: float | None = None,
    estimated_s: float | None = None,
    progress: float | None = None,
    attempts: int = 1,
    file_name: str = "part.gcode",
) -> int:
    """A job as the queue and the dispatcher would have left it, with its events; its id."""
    sha = hashlib.sha256(file_name.encode()).hexdigest()
    store.add_file(sha, 1234, file_name)
    created = started or finished or datetime.fromisoformat("2026-01-01T00:00:00+00:00")

    def insert(db: sqlite3.Connection) -> int:
        cur = db.execute(
            "INSERT INTO jobs (state, file_sha256, file_name, owner, priority, material, nozzle, printer,"
            " created_at, started_at, finished_at, progress, attempts, filament_g, estimated_s)"
            " VALUES (?, ?, ?, ?, 0, ?, 0.4, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                state,
                sha,
                file_name,
                owner,
                material,
                printer,
                _ts(created),
                _ts(started),
                _ts(finished),
                progress,
                attempts,
                filament_g,
                estimated_s,
            ),
        )
        job_id = int(cur.lastrowid or 0)
        events: list[tuple[str, datetime | None, str | None]] = [("queued", created, None)]
        if started is not None:
            events += [("dispatching", started, printer), ("printing", started, printer)]
        if state not in ("queued", "dispatching", "printing", "paused"):
            events.append((state, finished, printer))
        for event, at, on in events:
            _event(db, job_id, event, at, on)
        return job_id

    return store.transact(insert)


def _event(db: sqlite3.Connection, job_id: int, state: str, at: datetime | None, printer: str | None) -> None:
    db.execute(
        "INSERT INTO job_events (job_id, at, state, printer) VALUES (?, ?, ?, ?)",
        (job_id, _ts(at), state, printer),
    )


def add_events(store: Store, job_id: int, *events: tuple[str, datetime, str | None]) -> None:
    """Further state changes of a job, (state, at, printer) each; the jobs row is left as it is."""

    def insert(db: sqlite3.Connection) -> None:
        for event in events:
            _event(db, job_id, *event)

    store.transact(insert)


def add_account(store: Store, job_id: int, **figures: Any) -> None:
    """A job_accounts row with these figures (the rest null)."""
    columns = ["job_id", "accounted_at", *figures]
    values = [job_id, "2026-01-01T00:00:00+00:00", *figures.values()]
    marks = ", ".join("?" for _ in columns)
    store.transact(
        lambda db: db.execute(
            f"INSERT INTO job_accounts ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608 - test's own names
            values,
        )
    )
