"""Usage per owner, printer, material, day or month over finished jobs, for billing.

The figures are the accountant's (table job_accounts); a job not accounted (no plug, no scale, or not
yet settled) still counts with its slicer estimate. Days and months are the farm's local calendar: the
zone of the daemon's host (TZ, else /etc/localtime), daylight-saving time included.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from controller.core.errors import Unprocessable


class GroupBy(StrEnum):
    """What one report row sums over."""

    OWNER = "owner"
    PRINTER = "printer"
    MATERIAL = "material"
    DAY = "day"
    MONTH = "month"


class BadPeriod(Unprocessable):
    """A report's since/until is not a date, or not in order (422)."""


# A job cancelled while still queued never reached a printer: it made and used nothing.
FINISHED_SQL = (
    "j.state IN ('completed', 'failed', 'cancelled') AND (j.printer IS NOT NULL OR a.job_id IS NOT NULL)"
)
# A finished job's filament, waste included: for a completed job what a scale weighed, else the
# estimate (the accountant's, else the slicer's stored with the job), plus what earlier failed attempts
# of it wasted; for a failed or cancelled one its wasted grams (the accountant's, summed over its
# attempts: weighed, else the estimate x progress; without an account, the estimate x progress).
GRAMS_SQL = """CASE
    WHEN j.state = 'completed'
        THEN COALESCE(a.filament_measured_g, a.filament_est_g, j.filament_g) + COALESCE(a.waste_g, 0.0)
    ELSE COALESCE(a.waste_g, a.filament_measured_g, COALESCE(a.filament_est_g, j.filament_g)
        * MIN(100.0, MAX(0.0, COALESCE(j.progress, 0.0))) / 100.0)
END"""
_HOURS_SQL = "COALESCE((julianday(j.finished_at) - julianday(j.started_at)) * 24.0, 0.0)"
_KEYS = {
    GroupBy.OWNER: "j.owner",
    GroupBy.PRINTER: "COALESCE(j.printer, '-')",
    GroupBy.MATERIAL: "COALESCE(j.material, '-')",
    GroupBy.DAY: "farm_local(j.finished_at, '%Y-%m-%d')",
    GroupBy.MONTH: "farm_local(j.finished_at, '%Y-%m')",
}


@dataclass(frozen=True, slots=True)
class UsageRow:
    """The sums of one group of finished jobs."""

    key: str
    jobs: int
    print_hours: float
    filament_g: float
    energy_kwh: float
    cost: float
    co2_g: float
    waste_g: float
    waste_kwh: float


def usage(
    db: sqlite3.Connection, group_by: GroupBy, since: datetime, until: datetime, tz: tzinfo | None = None
) -> list[UsageRow]:
    """One row per key over the jobs that finished in [since, until), ordered by key.

    `tz` is the zone of day and month keys (None: the host's local zone).
    """

    def local(stamp: str, fmt: str) -> str:
        return datetime.fromisoformat(stamp).astimezone(tz).strftime(fmt)

    # Registered per call: the store has one connection and the zone is this report's.
    db.create_function("farm_local", 2, local, deterministic=True)
    query = f"""
        SELECT {_KEYS[group_by]} AS key, COUNT(*) AS jobs,
            TOTAL({_HOURS_SQL}) AS print_hours,
            TOTAL({GRAMS_SQL}) AS filament_g,
            TOTAL(a.energy_kwh) AS energy_kwh,
            TOTAL(a.cost) AS cost,
            TOTAL(a.co2_g) AS co2_g,
            TOTAL(CASE WHEN j.state = 'completed' THEN a.waste_g ELSE {GRAMS_SQL} END) AS waste_g,
            TOTAL(a.waste_kwh) AS waste_kwh
        FROM jobs j LEFT JOIN job_accounts a ON a.job_id = j.id
        WHERE {FINISHED_SQL} AND j.finished_at >= ? AND j.finished_at < ?
        GROUP BY key ORDER BY key
    """  # noqa: S608 - only our own SQL fragments are interpolated
    rows = db.execute(query, (utc_text(since), utc_text(until))).fetchall()
    return [UsageRow(*(tuple(row))) for row in rows]


def total(rows: list[UsageRow], key: str = "total") -> UsageRow:
    """The sums of `rows` as one row."""
    sums = [sum(getattr(r, f.name) for r in rows) for f in fields(UsageRow)[1:]]
    return UsageRow(key, int(sums[0]), *sums[1:])


def utc_text(moment: datetime) -> str:
    """`moment` as the store writes timestamps (ISO-8601 UTC), so text order is time order."""
    return moment.astimezone(UTC).isoformat()


def local_midnight(year: int, month: int, day: int, tz: tzinfo | None) -> datetime:
    """Midnight of that date in `tz` (None: the host's zone, with its daylight-saving offset then)."""
    naive = datetime(year, month, day)
    return naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()


_TICK = timedelta(microseconds=1)
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def month_of(moment: datetime, tz: tzinfo | None = None) -> tuple[datetime, datetime]:
    """The local calendar month holding `moment`: [its first midnight, the next month's)."""
    local = moment.astimezone(tz)
    year, month = local.year, local.month
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return local_midnight(year, month, 1, tz), local_midnight(*following, 1, tz)


def parse_moment(name: str, text: str, tz: tzinfo | None = None) -> datetime:
    """A report bound: a date (local midnight), a local date and time, or one with an offset."""
    shown = repr(text[:40])
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadPeriod(
            f"{name}: {shown} is not a date (2026-11-01) or a date and time (2026-11-01T08:00)"
        ) from None
    outside = BadPeriod(f"{name}: {shown} is not between the years {_EARLIEST.year} and {_LATEST.year}")
    try:
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz) if tz is not None else value.astimezone()
        value = value.astimezone(UTC)
    except (ValueError, OverflowError, OSError):  # a zone's offset past year 1 or 9999
        raise outside from None
    # Far enough from year 1 and 9999 that every local calendar step around it is a date.
    if not _EARLIEST <= value <= _LATEST:
        raise outside
    return value


def period(
    since: str | None, until: str | None, now: datetime, tz: tzinfo | None = None
) -> tuple[datetime, datetime]:
    """[since, until) from the request: by default this month (in the farm's zone); with only `until`,
    from the start of its month; with only `since`, to the end of this month."""
    end = parse_moment("until", until, tz) if until else month_of(now, tz)[1]
    start = parse_moment("since", since, tz) if since else month_of(end - _TICK, tz)[0]
    if start >= end:
        raise BadPeriod(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    return start, end
