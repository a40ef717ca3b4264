"""The job store: SQLite (WAL, synchronous=FULL) with versioned migrations.

Synchronous by design: the daemon calls it through one worker thread (`AsyncStore`), so the event loop
never waits on the SD card and SQLite sees a single writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from controller.core.errors import NotFound as NotFound  # controller.store's NotFound
from controller.jobs import Job, JobState, Requirements, check_transition
from controller.store.migrations import MIGRATIONS

# Row ids are SQLite's signed 64-bit integers counted from 1; sqlite3 raises OverflowError for a Python
# int past the top, so an id outside this range is answered as unknown before it reaches SQLite.
MAX_ID = 2**63 - 1
T = TypeVar("T")


def _storable(job_id: int) -> bool:
    return 1 <= job_id <= MAX_ID


def _job_id(job_id: int) -> int:
    if not _storable(job_id):
        raise NotFound(f"no job {job_id}")
    return job_id


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One recorded state change of a job."""

    job_id: int
    at: datetime
    state: JobState
    printer: str | None
    detail: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _job(row: sqlite3.Row) -> Job:
    size = (row["size_x"], row["size_y"], row["size_z"])
    return Job(
        id=row["id"],
        state=JobState(row["state"]),
        file_sha256=row["file_sha256"],
        file_name=row["file_name"],
        owner=row["owner"],
        priority=row["priority"],
        requirements=Requirements(
            material=row["material"],
            nozzle=row["nozzle"],
            size=None if None in size else size,
            printer=row["req_printer"],
            group=row["req_group"],
        ),
        created_at=datetime.fromisoformat(row["created_at"]),
        printer=row["printer"],
        started_at=_dt(row["started_at"]),
        finished_at=_dt(row["finished_at"]),
        progress=row["progress"],
        error=row["error"],
        attempts=row["attempts"],
        filament_g=row["filament_g"],
        estimated_s=row["estimated_s"],
    )


def _write_bed(db: sqlite3.Connection, printer: str, *, clear: bool) -> None:
    db.execute(
        "INSERT INTO beds(printer, clear, updated_at) VALUES (?,?,?)"
        " ON CONFLICT(printer) DO UPDATE SET clear = excluded.clear, updated_at = excluded.updated_at",
        (printer, int(clear), _ts(_now())),
    )


class Store:
    """Jobs, their events, file records and bed state in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed job survives power loss, which a print farm on a Pi will see.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()
        # With `record_events` (AsyncStore with a feed), the job events each committed transaction
        # wrote, for take_recorded(): published without reading them back.
        self.record_events = False
        self._pending_events: list[tuple[int, JobEvent]] = []
        self._recorded: list[tuple[int, JobEvent]] = []

    def close(self) -> None:
        self._db.close()

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.version
        if current > len(MIGRATIONS):
            raise RuntimeError(f"{self.path}: store version {current} is newer than this farmctl")
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            # executescript commits first; the version bump rides in the same script.
            self._db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            self._pending_events.clear()
            raise
        db.execute("COMMIT")
        self._recorded += self._pending_events
        self._pending_events.clear()
        return result

    def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one write transaction (BEGIN IMMEDIATE … COMMIT; rolled back if it raises).

        For the packages that keep their own tables (accounting, reports): their SQL stays with them.
        """
        result: T = self._run(fn)
        return result

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the connection for reading (no transaction of its own)."""
        return fn(self._db)

    def take_recorded(self) -> list[tuple[int, JobEvent]]:
        """The (event id, event) pairs committed since the last call, oldest first."""
        recorded, self._recorded = self._recorded, []
        return recorded

    def add_file(self, sha256: str, size: int, original_name: str) -> None:
        """Record an uploaded file (idempotent: the same content is stored once)."""
        self._run(
            lambda db: db.execute(
                "INSERT OR IGNORE INTO files(sha256, size, original_name, uploaded_at) VALUES (?,?,?,?)",
                (sha256, size, original_name, _ts(_now())),
            )
        )

    def add_jobs(
        self,
        *,
        file_sha256: str,
        file_name: str,
        owner: str,
        priority: int,
        requirements: Requirements,
        copies: int,
        filament_g: float | None = None,
        estimated_s: float | None = None,
    ) -> list[Job]:
        """Queue `copies` jobs for one file in one transaction."""
        created = _ts(_now())
        req = requirements
        size = req.size or (None, None, None)

        def insert(db: sqlite3.Connection) -> list[int]:
            ids = []
            for _ in range(copies):
                cur = db.execute(
                    "INSERT INTO jobs(state, file_sha256, file_name, owner, priority, material, nozzle,"
                    " size_x, size_y, size_z, req_printer, req_group, created_at, filament_g, estimated_s)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        JobState.QUEUED,
                        file_sha256,
                        file_name,
                        owner,
                        priority,
                        req.material,
                        req.nozzle,
                        *size,
                        req.printer,
                        req.group,
                        created,
                        filament_g,
                        estimated_s,
                    ),
                )
                job_id = int(cur.lastrowid or 0)
                self._event(db, job_id, JobState.QUEUED, None, None)
                ids.append(job_id)
            return ids

        ids: list[int] = self._run(insert)
        return [self.get_job(i) for i in ids]

    def has_file(self, sha256: str) -> bool:
        """True if an upload with this content is recorded (and so must stay on disk)."""
        return self._db.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def get_job(self, job_id: int) -> Job:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (_job_id(job_id),)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return _job(row)

    def list_jobs(self, states: Sequence[JobState] | None = None) -> list[Job]:
        """Jobs in the given states (all when None), oldest first."""
        if states:
            marks = ",".join("?" * len(states))
            rows = self._db.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", tuple(states))  # noqa: S608 - only '?' marks are interpolated
        else:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY id")
        return [_job(r) for r in rows]

    def transition(
        self,
        job_id: int,
        new: JobState,
        *,
        printer: str | None = None,
        detail: str | None = None,
    ) -> Job:
        """Move a job to `new` (IllegalTransition if not allowed) and record the event atomically."""
        _job_id(job_id)
        self._run(lambda db: self._transition(db, job_id, new, printer, detail))
        return self.get_job(job_id)

    def start_dispatch(self, job_id: int, printer: str) -> Job:
        """Record the job `dispatching` on `printer` and its bed as used, in one transaction.

        A crash can leave both or neither: never a dispatching job on a bed still counted clear.
        """
        _job_id(job_id)

        def apply(db: sqlite3.Connection) -> None:
            self._transition(db, job_id, JobState.DISPATCHING, printer, None)
            _write_bed(db, printer, clear=False)

        self._run(apply)
        return self.get_job(job_id)

    def _transition(
        self, db: sqlite3.Connection, job_id: int, new: JobState, printer: str | None, detail: str | None
    ) -> None:
        row = db.execute("SELECT state, printer FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}")
        old = JobState(row["state"])
        check_transition(old, new)
        now = _ts(_now())
        # Back in the queue the job forgets its printer; otherwise it keeps or gets one.
        on: str | None = None if new is JobState.QUEUED else (printer or row["printer"])
        sets: dict[str, object] = {"state": new, "printer": on}
        if new is JobState.PRINTING and old is JobState.DISPATCHING:
            sets["started_at"] = now
        if new.finished:
            sets.update(finished_at=now, error=detail if new is JobState.FAILED else None)
        if new is JobState.COMPLETED:
            sets["progress"] = 100.0
        if new is JobState.QUEUED:  # keep why it came back
            sets.update(started_at=None, finished_at=None, progress=None, error=detail)
        assignments = ", ".join(f"{k} = ?" for k in sets)
        if new is JobState.DISPATCHING:
            assignments += ", attempts = attempts + 1"
        db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*sets.values(), job_id))  # noqa: S608 - column names are ours
        self._event(db, job_id, new, on, detail)

    def set_progress(self, job_id: int, progress: float) -> None:
        if not _storable(job_id):
            return
        self._run(lambda db: db.execute("UPDATE jobs SET progress = ? WHERE id = ?", (progress, job_id)))

    def events(self, job_id: int) -> list[JobEvent]:
        if not _storable(job_id):
            return []
        rows = self._db.execute("SELECT * FROM job_events WHERE job_id = ? ORDER BY id", (job_id,))
        return [
            JobEvent(
                r["job_id"], datetime.fromisoformat(r["at"]), JobState(r["state"]), r["printer"], r["detail"]
            )
            for r in rows
        ]

    def events_after(self, event_id: int, limit: int = 500) -> list[tuple[int, JobEvent, Job]]:
        """Job events newer than `event_id`, oldest first, each with its job as it is now."""
        rows = self._db.execute(
            "SELECT e.id AS event_id, e.job_id AS e_job, e.at AS e_at, e.state AS e_state,"
            " e.printer AS e_printer, e.detail AS e_detail, j.*"
            " FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE e.id > ? ORDER BY e.id LIMIT ?",
            (event_id, limit),
        )
        return [
            (
                r["event_id"],
                JobEvent(
                    r["e_job"],
                    datetime.fromisoformat(r["e_at"]),
                    JobState(r["e_state"]),
                    r["e_printer"],
                    r["e_detail"],
                ),
                _job(r),
            )
            for r in rows
        ]

    def last_event_id(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM job_events").fetchone()[0])

    def cursor(self, name: str) -> int | None:
        """Where the durable consumer `name` has got to in job_events; None if it never stored one."""
        row = self._db.execute("SELECT event_id FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row["event_id"])

    def set_cursor(self, name: str, event_id: int) -> None:
        self._run(
            lambda db: db.execute(
                "INSERT INTO cursors(name, event_id) VALUES (?,?)"
                " ON CONFLICT(name) DO UPDATE SET event_id = excluded.event_id",
                (name, event_id),
            )
        )

    def count_jobs(self) -> dict[JobState, int]:
        """How many jobs are in each state."""
        rows = self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {JobState(r["state"]): int(r["n"]) for r in rows}

    def set_bed_clear(self, printer: str, clear: bool) -> None:
        """Durably record whether a printer's bed is clear (unknown after a restart = not clear)."""
        self._run(lambda db: _write_bed(db, printer, clear=clear))

    def bed_clear(self, printer: str) -> bool | None:
        row = self._db.execute("SELECT clear FROM beds WHERE printer = ?", (printer,)).fetchone()
        return None if row is None else bool(row["clear"])

    def _event(
        self, db: sqlite3.Connection, job_id: int, state: JobState, printer: str | None, detail: str | None
    ) -> None:
        at = _now()
        cur = db.execute(
            "INSERT INTO job_events(job_id, at, state, printer, detail) VALUES (?,?,?,?,?)",
            (job_id, _ts(at), state, printer, detail),
        )
        if self.record_events:
            self._pending_events.append(
                (int(cur.lastrowid or 0), JobEvent(job_id, at, state, printer, detail))
            )
