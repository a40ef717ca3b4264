"""What the page shows, gathered from the same functions the JSON API answers with, so the page and the
API never disagree: printer cards with why each printer is idle, the queue, the history, usage."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from fastapi import FastAPI

from controller.accounting.ledger import accounts_for
from controller.accounting.usage import GroupBy
from controller.api.jobs import JobOut, job_out
from controller.api.printers import PrinterOut, printer_out
from controller.api.reports import UsageOut, usage_report
from controller.api.services import Services
from controller.api.tokens import Caller
from controller.jobs import Job, JobState

HISTORY_ROWS = 50
# The CSV's columns after the key, in the API's order (as `farmctl report --csv` writes them).
FIGURES = ("jobs", "print_hours", "filament_g", "energy_kwh", "cost", "co2_g", "waste_g", "waste_kwh")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

# Buttons the page can show, by the API route each one calls. Routes other parts of the daemon add later
# (move, pause, resume, reprint) show up as soon as the app has them; a button for a route that is not
# there would only ever answer 404.
ACTIONS = {
    "upload": ("POST", "/api/v1/jobs"),
    "clear": ("POST", "/api/v1/printers/{name}/clear"),
    "cancel": ("POST", "/api/v1/jobs/{job_id}/cancel"),
    "move": ("POST", "/api/v1/jobs/{job_id}/move"),
    "pause": ("POST", "/api/v1/jobs/{job_id}/pause"),
    "resume": ("POST", "/api/v1/jobs/{job_id}/resume"),
    "reprint": ("POST", "/api/v1/jobs/{job_id}/reprint"),
    "maintenance": ("POST", "/api/v1/printers/{name}/maintenance"),
    "service": ("DELETE", "/api/v1/printers/{name}/maintenance"),
}


def available_actions(app: FastAPI) -> frozenset[str]:
    """The ACTIONS whose route the app serves."""
    # FastAPI keeps included routers in private types; its OpenAPI document is the public map of routes.
    paths: dict[str, dict[str, object]] = app.openapi()["paths"]
    served = {(m.upper(), path) for path, operations in paths.items() for m in operations}
    return frozenset(name for name, route in ACTIONS.items() if route in served)


@dataclass(frozen=True, slots=True)
class Card:
    """One printer on the grid: its API object and, when it is not printing, why."""

    printer: PrinterOut
    why: str | None


@dataclass(frozen=True, slots=True)
class Finished:
    """One line of the history."""

    job: JobOut
    duration_s: float | None


def printers(farm: Services) -> list[PrinterOut]:
    return [printer_out(c, farm.fleet) for c in farm.fleet.coordinators.values()]


async def cards(farm: Services, only: str | None = None) -> list[Card]:
    """Printer cards in config order (one printer when `only` names it), each with why it is idle."""
    waiting = await farm.queue.list([JobState.QUEUED])
    reasons = [(j.id, farm.queue.waiting.get(j.id) or "") for j in waiting]
    shown = [p for p in printers(farm) if only is None or p.name == only]
    return [Card(p, why_idle(p, reasons)) for p in shown]


def why_idle(printer: PrinterOut, reasons: list[tuple[int, str]]) -> str | None:
    """Why a printer that is not printing takes no job, in the scheduler's words where it has them."""
    if getattr(printer, "maintenance", None) is not None:  # a field newer than this page
        return None  # the card says so with the reason given
    if printer.state == "awaiting_clear":
        return "waits for someone to empty the bed and confirm it (Bed is clear)"
    if printer.state == "offline":
        return "its host does not answer"
    if printer.state == "error":
        return f"error: {printer.error}" if printer.error else "in error"
    if printer.state != "idle":
        return None
    if not printer.bed_clear:
        return "waits for someone to empty the bed and confirm it (Bed is clear)"
    if not reasons:
        return "the queue is empty"
    # The scheduler's reason for each job names the printers it concerns (`p-1 has PETG`): show those.
    mine = re.compile(rf"(?<![\w.-]){re.escape(printer.name)}(?![\w.-])")
    for job_id, reason in reasons:
        parts = [p for p in reason.split("; ") if mine.search(p)]
        if parts:
            return f"job {job_id} waits: {'; '.join(parts)}"
    job_id, reason = reasons[0]
    return f"job {job_id} waits: {reason}" if reason else f"job {job_id} waits for the next round"


async def queue(farm: Services) -> list[JobOut]:
    """Jobs not finished: on printers first, then queued in the order the scheduler takes them."""
    active = [JobState.QUEUED, JobState.DISPATCHING, JobState.PRINTING, JobState.PAUSED]
    jobs = await farm.queue.list(active)
    running = [j for j in jobs if j.state is not JobState.QUEUED]
    # Highest priority first, then oldest (the scheduler also rotates owners at equal priority).
    queued = sorted((j for j in jobs if j.state is JobState.QUEUED), key=lambda j: (-j.priority, j.id))
    return [job_out(j, farm.queue) for j in running + queued]


async def history(farm: Services, limit: int = HISTORY_ROWS) -> list[Finished]:
    """The last `limit` finished jobs, newest first, with their measured figures."""
    done = await farm.queue.list([JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED])
    recent = sorted(done, key=_finished_key, reverse=True)[:limit]
    store = farm.queue.store
    ids = [j.id for j in recent if j.started_at is not None]
    accounts = await store.call(store.sync.read, partial(accounts_for, job_ids=ids)) if ids else {}
    return [Finished(job_out(j, farm.queue, accounts.get(j.id)), _duration(j)) for j in recent]


def _finished_key(job: Job) -> tuple[datetime, int]:
    return (job.finished_at or job.created_at, job.id)


def _duration(job: Job) -> float | None:
    if job.started_at is None or job.finished_at is None:
        return None
    return (job.finished_at - job.started_at).total_seconds()


def month_bounds(month: str | None, now: datetime | None = None) -> tuple[str, str, str]:
    """(month, since, until) for a `YYYY-MM` month (this month when None); ValueError when malformed."""
    if not month:
        month = (now or datetime.now(UTC)).strftime("%Y-%m")
    found = MONTH.match(month)
    if found is None:
        raise ValueError(f"month {month[:16]!r} is not YYYY-MM")
    year, number = int(found[1]), int(found[2])
    following = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
    return month, f"{month}-01", f"{following}-01"


async def usage(farm: Services, caller: Caller, month: str | None) -> tuple[str, UsageOut]:
    """The month's usage per member, as GET /api/v1/reports/usage?group_by=owner answers it."""
    month, since, until = month_bounds(month)
    return month, await usage_report(farm, caller, GroupBy.OWNER, since, until)


def usage_csv(report: UsageOut) -> str:
    """The report as CSV: one row per member, the columns `farmctl report --csv` writes."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow((report.group_by, *FIGURES, "currency"))
    for row in report.rows:
        writer.writerow((_cell(row.key), *(getattr(row, f) for f in FIGURES), report.currency))
    return out.getvalue()


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
