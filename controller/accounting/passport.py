"""The print passport: one record per finished print, chained by hash into a tamper-evident ledger.

Each record is canonical JSON (sorted keys, no whitespace, ASCII) saying what was made (file name,
G-code sha256, size), where (printer, group), when, by whom, the outcome, from what (material, nozzle,
measured and estimated grams) and its energy, CO2 and cost; it holds its own seq and the previous
record's hash, and its hash is the sha256 of that JSON. Changing any stored record breaks its hash;
rewriting it and every later one changes the newest hash, which `farmctl passport verify` prints so it
can be kept elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64  # the previous hash of the first record
PAGE_MAX = 1000  # records per page of the ledger, for the API and verify()
# The job's latest finish event, its attempt (dispatches up to it) and when that attempt began printing.
_LAST_FINISH = """
    SELECT e.id, e.at, e.state, e.printer,
        (SELECT COUNT(*) FROM job_events d
            WHERE d.job_id = e.job_id AND d.id < e.id AND d.state = 'dispatching') AS attempt,
        (SELECT p.at FROM job_events p
            WHERE p.job_id = e.job_id AND p.id < e.id AND p.state = 'printing'
            AND p.id > COALESCE((SELECT MAX(d.id) FROM job_events d
                WHERE d.job_id = e.job_id AND d.id < e.id AND d.state = 'dispatching'), 0)
            ORDER BY p.id LIMIT 1) AS started_at
    FROM job_events e
    WHERE e.job_id = ? AND e.state IN ('completed', 'failed', 'cancelled')
    ORDER BY e.id DESC LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class Passport:
    """One stored record: its place in the ledger, its canonical JSON text and its hash."""

    seq: int
    job_id: int
    text: str
    prev_hash: str
    hash: str

    @property
    def record(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.text)
        return value


def canonical(record: Mapping[str, Any]) -> str:
    """The one JSON text of `record` that is hashed: sorted keys, no whitespace, ASCII only."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _figure(value: float | None) -> float | None:
    # JSON has no NaN or infinity: a figure that is not a number is no figure.
    return value if value is None or math.isfinite(value) else None


def append(
    db: sqlite3.Connection,
    job_id: int,
    at: datetime,
    *,
    group: str | None = None,
    currency: str | None = None,
) -> None:
    """Add the record of the job's latest finished print to the ledger, inside the caller's transaction.

    The print is read from the job's events, so a failed job already back in the queue (a retry) still
    gets the record of the attempt that failed. Each finished attempt is recorded once: calling it again
    adds nothing. `group` is its printer's group, `currency` the cost's.
    """
    job = db.execute(
        "SELECT j.*, f.size AS file_size FROM jobs j LEFT JOIN files f ON f.sha256 = j.file_sha256"
        " WHERE j.id = ?",
        (job_id,),
    ).fetchone()
    if job is None:
        raise ValueError(f"no job {job_id}")
    end = db.execute(_LAST_FINISH, (job_id,)).fetchone()
    if end is None:
        raise ValueError(f"job {job_id} has not finished a print: it has no passport yet")
    seen = "SELECT 1 FROM passports WHERE job_id = ? AND attempt = ?"
    if db.execute(seen, (job_id, end["attempt"])).fetchone() is not None:
        return
    account = db.execute("SELECT * FROM job_accounts WHERE job_id = ?", (job_id,)).fetchone()

    def figure(name: str) -> float | None:
        return _figure(account[name]) if account is not None else None

    last = db.execute("SELECT seq, hash FROM passports ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (1, GENESIS) if last is None else (last["seq"] + 1, last["hash"])
    record = {
        "seq": seq,
        "prev_hash": prev_hash,
        "recorded_at": at.astimezone(UTC).isoformat(),
        "job": job_id,
        "attempt": end["attempt"],
        "file": {"name": job["file_name"], "sha256": job["file_sha256"], "size": job["file_size"]},
        "printer": end["printer"],
        "group": group,
        "owner": job["owner"],
        "outcome": end["state"],
        "created_at": job["created_at"],
        "started_at": end["started_at"],
        "finished_at": end["at"],
        "material": job["material"],
        "nozzle": _figure(job["nozzle"]),
        "filament_measured_g": figure("filament_measured_g"),
        "filament_estimated_g": figure("filament_est_g")
        if account is not None
        else _figure(job["filament_g"]),
        "waste_g": figure("waste_g"),
        "energy_kwh": figure("energy_kwh"),
        "energy_source": account["energy_source"] if account is not None else None,
        "co2_g": figure("co2_g"),
        "cost": figure("cost"),
        "currency": currency,
    }
    text = canonical(record)
    db.execute(
        "INSERT INTO passports (seq, job_id, attempt, record, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, job_id, end["attempt"], text, prev_hash, digest(text)),
    )


def _passport(row: sqlite3.Row) -> Passport:
    return Passport(row["seq"], row["job_id"], row["record"], row["prev_hash"], row["hash"])


def of_job(db: sqlite3.Connection, job_id: int) -> Passport | None:
    """The job's latest record (its last finished attempt), or None."""
    row = db.execute(
        "SELECT * FROM passports WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
    ).fetchone()
    return _passport(row) if row is not None else None


def page(db: sqlite3.Connection, after: int = 0, limit: int = PAGE_MAX) -> list[Passport]:
    """Up to `limit` (at most PAGE_MAX) records with seq > `after`, in seq order."""
    rows = db.execute(
        "SELECT * FROM passports WHERE seq > ? ORDER BY seq LIMIT ?", (after, min(limit, PAGE_MAX))
    )
    return [_passport(r) for r in rows]


class Chain:
    """Checks records fed in seq order: each hash, each link to the one before, no seq missing."""

    def __init__(self) -> None:
        self.count = 0
        self.head = GENESIS  # the hash of the last good record

    def check(self, seq: int, text: str, prev_hash: str, hash_: str) -> str | None:
        """None if this record is sound and follows the last one; else what is wrong with it."""
        expected = self.count + 1
        if seq != expected:
            return f"seq {expected}: missing (the next record is seq {seq})"
        if digest(text) != hash_:
            return f"seq {seq}: the record does not match its hash (changed after it was written)"
        try:
            record = json.loads(text)
        except ValueError:
            return f"seq {seq}: the record is not JSON"
        if not isinstance(record, dict) or record.get("seq") != seq or record.get("prev_hash") != prev_hash:
            return f"seq {seq}: the record's seq or prev_hash is not the ledger's"
        if prev_hash != self.head:
            return f"seq {seq}: its prev_hash is not the hash of seq {seq - 1} (seq {seq - 1} was rewritten)"
        self.count, self.head = seq, hash_
        return None


def entries(db: sqlite3.Connection) -> Iterator[Passport]:
    """Every record in seq order, read a page at a time."""
    after = 0
    while batch := page(db, after):
        yield from batch
        after = batch[-1].seq


def verify(db: sqlite3.Connection) -> list[str]:
    """The ledger's problems, first broken record first (checking stops there); [] when it is sound."""
    chain = Chain()
    for entry in entries(db):
        problem = chain.check(entry.seq, entry.text, entry.prev_hash, entry.hash)
        if problem is not None:
            return [problem]
    return []
