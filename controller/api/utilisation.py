"""`/api/v1/reports/utilisation`: availability, performance, quality, OEE and bed-clear waits from the
printers' recorded state timeline (definitions in controller/accounting/oee.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from controller.accounting import oee
from controller.accounting.oee import TimelineState
from controller.accounting.timeline import changes_in, jobs_finished
from controller.api.auth import Caller, require
from controller.api.errors import error_responses, success
from controller.api.examples import UTILISATION_EXAMPLE, parameter
from controller.api.services import ServicesDep
from controller.config import Role
from controller.core.errors import Unprocessable

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
DEFAULT_PERIOD = timedelta(days=7)


def _iso_only(value: object) -> object:
    """Refuse what pydantic would read as seconds since 1970 (`until=0.5`): the API takes ISO 8601."""
    if isinstance(value, str) and not re.match(r"\d{4}-", value):
        raise ValueError("not an ISO 8601 time such as 2026-03-01 or 2026-03-01T08:00:00Z")
    return value


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is UTC."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the last year a datetime holds
        raise ValueError("out of range") from None


Time = Annotated[datetime | None, BeforeValidator(_iso_only), AfterValidator(_utc)]


class GroupBy(StrEnum):
    """What one row of the report is about."""

    PRINTER = "printer"
    GROUP = "group"
    FARM = "farm"


class UtilisationRow(BaseModel):
    """One printer's, group's or the farm's figures; sums of printer-hours for a group or the farm."""

    key: str = Field(description="The printer, the group, or `farm`", examples=["mk4-1"])
    period_s: float = Field(description="Length of the period, seconds", examples=[604800.0])
    printing_h: float = Field(description="Hours printing (heat-up included)", examples=[61.5])
    paused_h: float = Field(description="Hours paused", examples=[0.4])
    awaiting_clear_h: float = Field(description="Hours waiting for an operator to clear the bed")
    idle_h: float = Field(description="Hours idle with a clear bed")
    offline_h: float = Field(description="Hours its host could not be reached")
    error_h: float = Field(description="Hours in error")
    off_h: float = Field(description="Hours with its plug off (planned downtime; not recorded yet)")
    unknown_h: float = Field(description="Hours not observed: the daemon not running, or before it began")
    availability: float | None = Field(
        description="(planned - offline - error) / planned; planned = period - off - unknown", examples=[0.97]
    )
    performance: float | None = Field(
        description="Σ slicer estimate / Σ actual print time of completed jobs, at most 1", examples=[0.91]
    )
    quality: float | None = Field(description="completed / (completed + failed)", examples=[0.95])
    oee: float | None = Field(description="availability * performance * quality", examples=[0.84])
    utilisation: float | None = Field(description="printing / planned", examples=[0.37])
    jobs_completed: int = Field(description="Jobs completed in the period", examples=[42])
    jobs_failed: int = Field(description="Jobs failed in the period", examples=[2])
    jobs_cancelled: int = Field(description="Jobs cancelled on a printer in the period", examples=[1])
    bed_clear_wait_median_s: float | None = Field(
        description="Median time from a print's end to the bed cleared, seconds", examples=[840.0]
    )
    bed_clear_wait_p90_s: float | None = Field(description="Its 90th percentile, seconds", examples=[3900.0])


class UtilisationOut(BaseModel):
    """The report: one row per printer, group or the farm."""

    model_config = ConfigDict(json_schema_extra={"examples": [UTILISATION_EXAMPLE]})

    since: datetime = Field(
        description="Start of the period (UTC, inclusive)", examples=["2026-11-25T00:00:00Z"]
    )
    until: datetime = Field(
        description="End of the period (UTC, exclusive)", examples=["2026-12-02T00:00:00Z"]
    )
    group_by: GroupBy
    rows: list[UtilisationRow]


def row_out(row: oee.Utilisation) -> UtilisationRow:
    hours = {f"{state}_h": row.hours[state] for state in TimelineState}
    return UtilisationRow(
        key=row.key,
        period_s=row.period_s,
        **hours,
        availability=row.availability,
        performance=row.performance,
        quality=row.quality,
        oee=row.oee,
        utilisation=row.utilisation,
        jobs_completed=row.jobs_completed,
        jobs_failed=row.jobs_failed,
        jobs_cancelled=row.jobs_cancelled,
        bed_clear_wait_median_s=row.bed_clear_wait_median_s,
        bed_clear_wait_p90_s=row.bed_clear_wait_p90_s,
    )


@router.get(
    "/utilisation",
    summary="Utilisation and OEE",
    response_model=UtilisationOut,
    responses={
        **success("One row per printer, group or the farm"),
        **error_responses(
            Role.VIEWER,
            {
                422: (
                    "since or until is not a time, since is not before until, or an unknown group_by",
                    "query.since: Value error, not an ISO 8601 time such as 2026-03-01 or "
                    "2026-03-01T08:00:00Z",
                )
            },
        ),
    },
)
async def utilisation_report(
    farm: ServicesDep,
    _: Viewer,
    group_by: Annotated[
        GroupBy,
        Query(description="printer | group | farm", openapi_examples=parameter("printer", "Per printer")),
    ] = GroupBy.PRINTER,
    since: Annotated[
        Time,
        Query(
            description="Start, ISO 8601 (UTC when no zone is given); default: until - 7 days",
            openapi_examples=parameter("2026-11-25T00:00:00Z", "A week"),
        ),
    ] = None,
    until: Annotated[
        Time,
        Query(
            description="End, ISO 8601; default: now",
            openapi_examples=parameter("2026-12-02T00:00:00Z", "A week"),
        ),
    ] = None,
) -> UtilisationOut:
    """Per printer, group or the whole farm over [since, until): hours in each state, availability,
    performance, quality, OEE, utilisation, jobs and bed-clear waits; null where a figure is undefined
    (no planned time, no completed job with an estimate, no finished job, no wait). How much of its
    time each printer prints, what keeps it from printing (offline, errors, a bed nobody cleared), and
    how long beds wait for someone to clear them.

    Role: viewer."""
    now = datetime.now(UTC)
    end = until or now
    try:
        start = since or end - DEFAULT_PERIOD
    except OverflowError:  # 0001-01-01 minus the default week
        raise Unprocessable("since or until is out of range") from None
    if start >= end:
        raise Unprocessable("since must be before until")
    store = farm.queue.store
    changes = await store.call(store.sync.read, lambda db: changes_in(db, start, end))
    jobs = await store.call(store.sync.read, lambda db: jobs_finished(db, start, end))
    # The fleet's printers, not the start-up config's: a printer a reload (SIGHUP) added counts at once.
    printers = [c.printer for c in farm.fleet.coordinators.values()]
    rows = oee.utilisation(
        changes,
        jobs,
        start,
        end,
        printers=[p.name for p in printers],
        key_of=oee.grouping(group_by, {p.name: p.group for p in printers}),
        now=now,
    )
    return UtilisationOut(since=start, until=end, group_by=group_by, rows=[row_out(r) for r in rows])
