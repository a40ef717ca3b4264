"""`/api/v1/reports/usage` (usage for billing) and the print passports: one job's, and the ledger."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from controller.accounting import passport
from controller.accounting.usage import GroupBy, UsageRow, period, total, usage
from controller.api.auth import Caller, require
from controller.api.errors import error_responses, success
from controller.api.examples import LEDGER_EXAMPLE, PASSPORT_EXAMPLE, USAGE_EXAMPLE, parameter
from controller.api.services import ServicesDep
from controller.config import Role
from controller.core.errors import NotFound
from controller.store import MAX_ID

router = APIRouter(tags=["reports"])
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
_BOUND = (
    "A date (2026-11-01: midnight in the farm's zone), a date and time in that zone (2026-11-01T08:00) "
    "or with an offset (2026-11-01T08:00+01:00)"
)
_SINCE = f"{_BOUND}. Default: the first day of until's month (of this month without until)"
_UNTIL = f"{_BOUND}. Default: the first day of next month"


class UsageRowOut(BaseModel):
    """The sums of one group of finished jobs."""

    key: str = Field(
        description="The owner, printer, material (`-` when the job named none), day (YYYY-MM-DD) or "
        "month (YYYY-MM) in the farm's zone, or `total`",
        examples=["alice"],
    )
    jobs: int = Field(description="Finished jobs that reached a printer", examples=[12])
    print_hours: float = Field(description="Hours from start to finish, summed", examples=[31.5])
    filament_g: float = Field(
        description="Grams used, waste included: weighed by a scale where there is one, else the "
        "slicer's estimate (x progress for a failed or cancelled print)",
        examples=[412.3],
    )
    energy_kwh: float = Field(description="Measured energy, kWh (0 where no plug measured)", examples=[2.41])
    cost: float = Field(description="Cost in `currency` as priced when each job ended", examples=[18.2])
    co2_g: float = Field(description="Grid CO2 of the measured energy, grams", examples=[964.0])
    waste_g: float = Field(description="Grams of failed and cancelled prints (and failed attempts)")
    waste_kwh: float = Field(description="kWh of failed and cancelled prints (and failed attempts)")


class UsageOut(BaseModel):
    """A usage report: one row per key, and their total."""

    model_config = ConfigDict(json_schema_extra={"examples": [USAGE_EXAMPLE]})

    group_by: GroupBy
    since: datetime = Field(
        description="Start (inclusive), with the farm zone's offset", examples=["2026-11-01T00:00:00+01:00"]
    )
    until: datetime = Field(
        description="End (exclusive), with the farm zone's offset", examples=["2026-12-01T00:00:00+01:00"]
    )
    timezone: str = Field(
        description="The farm's zone: [costs] timezone, else the host's", examples=["Europe/Berlin"]
    )
    currency: str = Field(description="[costs] currency", examples=["EUR"])
    rows: list[UsageRowOut]
    total: UsageRowOut


class PassportOut(BaseModel):
    """One print passport: the canonical record, its hash and its place in the ledger."""

    model_config = ConfigDict(json_schema_extra={"examples": [PASSPORT_EXAMPLE]})

    seq: int = Field(description="Its place in the ledger, from 1", examples=[41])
    job_id: int = Field(description="The job it records", examples=[17])
    record: dict[str, Any] = Field(
        description="What was made, where, when, by whom, from what; energy, CO2, cost; its seq and "
        "prev_hash. sha256 of its canonical JSON (sorted keys, no whitespace, ASCII) is `hash`"
    )
    hash: str = Field(description="sha256 (hex) of the canonical record")
    prev_hash: str = Field(description="The hash of record seq - 1 (64 zeros for the first)")


class LedgerOut(BaseModel):
    """A page of the passport ledger in seq order."""

    model_config = ConfigDict(json_schema_extra={"examples": [LEDGER_EXAMPLE]})

    passports: list[PassportOut]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page", examples=[500]
    )


def _row(row: UsageRow) -> UsageRowOut:
    # Six decimals: float noise (julianday hours, summed grams) stays out of a bill.
    values = {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(row).items()}
    return UsageRowOut(**values)


def _passport(entry: passport.Passport) -> PassportOut:
    return PassportOut(
        seq=entry.seq, job_id=entry.job_id, record=entry.record, hash=entry.hash, prev_hash=entry.prev_hash
    )


@router.get(
    "/api/v1/reports/usage",
    summary="Usage for billing",
    response_model=UsageOut,
    responses={
        **success("One row per owner (printer, material, day or month) and the total"),
        **error_responses(
            Role.VIEWER,
            {
                422: (
                    "An unknown group_by, since or until not a date, or since not before until",
                    "since (2026-12-01T00:00:00+01:00) must be before until (2026-11-01T00:00:00+01:00)",
                )
            },
        ),
    },
)
async def usage_report(
    farm: ServicesDep,
    _: Viewer,
    group_by: Annotated[
        GroupBy,
        Query(
            description="owner | printer | material | day | month",
            openapi_examples=parameter("owner", "Per member"),
        ),
    ] = GroupBy.OWNER,
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description=f"Start (inclusive). {_BOUND}. Default: this month's first day",
            openapi_examples=parameter("2026-11-01", "November"),
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            max_length=64,
            description=f"End (exclusive). {_BOUND}. Default: next month's first day",
            openapi_examples=parameter("2026-12-01", "November"),
        ),
    ] = None,
) -> UsageOut:
    """Jobs, print hours, grams, kWh, cost, CO2 and waste of the jobs that finished (completed, failed or
    cancelled on a printer) in [since, until), one row per owner, printer, material, day or month.
    Days and months are the farm's calendar ([costs] timezone, else the host's zone). What a member
    owes for the month: `?group_by=owner&since=2026-11-01&until=2026-12-01`.

    Role: viewer."""
    zone = farm.config.costs.zone
    start, end = period(since, until, datetime.now(UTC), zone)
    store = farm.queue.store
    rows = await store.call(store.sync.read, lambda db: usage(db, group_by, start, end, zone))
    return UsageOut(
        group_by=group_by,
        since=start.astimezone(zone),
        until=end.astimezone(zone),
        timezone=str(zone),
        currency=farm.config.costs.currency,
        rows=[_row(r) for r in rows],
        total=_row(total(rows)),
    )


@router.get(
    "/api/v1/jobs/{job_id}/passport",
    summary="A job's print passport",
    response_model=PassportOut,
    tags=["jobs"],
    responses={
        **success("The passport of the job's last finished attempt"),
        **error_responses(
            Role.VIEWER,
            {
                404: (
                    "No such job, or it has not finished (or not been accounted) yet",
                    "job 17 has no passport yet: it has not finished",
                ),
                422: ("Not a job id", "path.job_id: Input should be greater than or equal to 1"),
            },
        ),
    },
)
async def job_passport(
    farm: ServicesDep,
    _: Viewer,
    job_id: Annotated[
        int, Path(ge=1, le=MAX_ID, description="The job's id", openapi_examples=parameter(17, "Job 17"))
    ],
) -> PassportOut:
    """The job's print passport: the record of what was made, on which printer, for whom, from which
    file, and what it took (grams, kWh, CO2, cost), chained by hash to every record before it, so a
    changed figure shows. Of its last finished attempt.

    Role: viewer."""
    queue = farm.queue
    job = await queue.get(job_id)  # NotFound → 404
    store = queue.store
    entry = await store.call(store.sync.read, lambda db: passport.of_job(db, job_id))
    if entry is None:
        why = "it has not finished" if not job.state.finished else "its figures are not settled yet"
        raise NotFound(f"job {job_id} has no passport yet: {why}")
    return _passport(entry)


@router.get(
    "/api/v1/passports",
    summary="The passport ledger",
    response_model=LedgerOut,
    responses={
        **success("A page of passports in seq order"),
        **error_responses(
            Role.VIEWER,
            {
                422: (
                    "after or limit is not a whole number in range",
                    "query.limit: Input should be greater than or equal to 1",
                )
            },
        ),
    },
)
async def passport_ledger(
    farm: ServicesDep,
    _: Viewer,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_ID,
            description="Records with seq greater than this",
            openapi_examples=parameter(40, "After record 40"),
        ),
    ] = 0,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=passport.PAGE_MAX,
            description="At most this many",
            openapi_examples=parameter(1, "One record"),
        ),
    ] = 500,
) -> LedgerOut:
    """The passport ledger in seq order, a page at a time (`farmctl passport verify` reads it all and
    checks every hash and link).

    Role: viewer."""
    store = farm.queue.store
    entries = await store.call(store.sync.read, lambda db: passport.page(db, after, limit))
    full = len(entries) == limit
    return LedgerOut(
        passports=[_passport(e) for e in entries], next_after=entries[-1].seq if full and entries else None
    )
