"""What a notification says, made from the farm's events: a print finished or failed, a printer went
offline or into error, a submission was refused for a member's quota."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from controller.config.notify import NoticeKind
from controller.core.events import JobChanged, PrinterChanged
from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification, the same for every target: a title, a body, and what it is about."""

    kind: NoticeKind
    title: str
    body: str
    printer: str | None = None
    job_id: int | None = None
    owner: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> bytes:
        """The MQTT payload."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return json.dumps(data).encode()


def job_notice(event: JobChanged, job: Job) -> Notice | None:
    """A finished or failed print's notice; None for other job changes."""
    where = f" on {job.printer}" if job.printer else ""
    what = f"job {job.id} {job.file_name} ({job.owner})"
    if event.state is JobState.COMPLETED:
        return Notice(
            NoticeKind.PRINT_FINISHED,
            f"Print finished{where}",
            f"{what} is done: take it off the bed and confirm the bed is clear.",
            job.printer,
            job.id,
            job.owner,
        )
    if event.state is JobState.FAILED:
        why = f": {job.error}" if job.error else ""
        return Notice(
            NoticeKind.PRINT_FAILED,
            f"Print failed{where}",
            f"{what} failed{why}. Check the printer and clear its bed.",
            job.printer,
            job.id,
            job.owner,
        )
    return None


def quota_notice(owner: str, message: str) -> Notice:
    return Notice(
        NoticeKind.QUOTA_REACHED,
        f"Quota reached: {owner}",
        f"A submission was refused: {message}",
        owner=owner,
    )


# A printer must be up this long before its next outage is told again: hosts that flap, and pushed
# frames older than an error (error → printing → error within a second), would otherwise repeat it.
UP_SETTLE_S = 60.0
_DOWN = (PrinterState.OFFLINE, PrinterState.ERROR)


class PrinterWatch:
    """Notices for printers that go down: one per outage, on entering offline or error from an up state.
    A printer never seen up since the daemon started gives none (it may simply be switched off)."""

    def __init__(self, settle_s: float = UP_SETTLE_S) -> None:
        self.settle_s = settle_s
        self._last: dict[str, PrinterState] = {}
        # Printers whose outage was told: since when they are up again (None: still down).
        self._told: dict[str, float | None] = {}

    def notice(self, event: PrinterChanged, now: float | None = None) -> Notice | None:
        status = event.status
        now = time.monotonic() if now is None else now
        before = self._last.get(status.name)
        self._last[status.name] = status.state
        if status.state not in _DOWN:
            if status.name in self._told and self._told[status.name] is None:
                self._told[status.name] = now
            return None
        if before is None or before in _DOWN:
            return None
        if status.name in self._told:
            back = self._told[status.name]
            if back is None or now - back < self.settle_s:  # the same outage still
                self._told[status.name] = None
                return None
        self._told[status.name] = None
        if status.state is PrinterState.OFFLINE:
            return Notice(
                NoticeKind.PRINTER_OFFLINE,
                f"Printer offline: {status.name}",
                f"{status.name} stopped answering ({status.detail}); it was {before}.",
                status.name,
            )
        return Notice(
            NoticeKind.PRINTER_ERROR,
            f"Printer error: {status.name}",
            f"{status.name} reports an error: {status.error or status.detail}; it was {before}.",
            status.name,
        )
