"""Why a queued job waits: one short sentence per job, from the same inputs as a scheduling round.

Pure like the scheduler: the dispatcher computes the reasons after each round, shows them in the API
and logs each job's reason once when it changes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace

from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState, Requirements
from controller.jobs.scheduler import (
    Assignment,
    PrinterSlot,
    can_print,
    material_ok,
    nozzle_ok,
    size_ok,
)

log = logging.getLogger(__name__)

# A farm of 20 printers must not give a paragraph: name a few, count the rest.
_MAX_NAMES = 3


def _mm(value: float) -> str:
    return f"{value:g}"


def _names(parts: list[str]) -> str:
    if len(parts) <= _MAX_NAMES:
        return ", ".join(parts)
    return ", ".join(parts[:_MAX_NAMES]) + f" and {len(parts) - _MAX_NAMES} more"


def slot_state(slot: PrinterSlot) -> str:
    """`demo-1 printing job 3`, `demo-1 awaiting bed clear`, `demo-1 in maintenance: nozzle swap`, …"""
    state = slot.state
    if slot.maintenance is not None and state not in (PrinterState.PRINTING, PrinterState.PAUSED):
        return f"{slot.name} in maintenance: {slot.maintenance}"
    if state is PrinterState.AWAITING_CLEAR:
        return f"{slot.name} awaiting bed clear"
    if state in (PrinterState.PRINTING, PrinterState.PAUSED):
        what = f"job {slot.job_id}" if slot.job_id is not None else "a file farmctl did not send"
        return f"{slot.name} {'printing' if state is PrinterState.PRINTING else 'paused in'} {what}"
    if state is PrinterState.ERROR:
        return f"{slot.name} in error"
    if state is PrinterState.OFFLINE:
        return f"{slot.name} offline"
    return f"{slot.name} {state}"


def _mismatches(req: Requirements, idle: Sequence[PrinterSlot]) -> list[str]:
    """For idle printers that cannot take the job: what they lack, one phrase per requirement."""
    out: list[str] = []
    if req.printer is not None:
        others = [s for s in idle if s.name != req.printer]
        if others:
            out.append(f"only printer {req.printer} may take it")
    if req.group is not None:
        wrong = [f"{s.name} is in {s.group}" for s in idle if s.group != req.group]
        if wrong:
            out.append(f"no idle printer in group {req.group} ({_names(wrong)})")
    if req.material is not None:
        material = req.material.strip().upper()
        wrong = [f"{s.name} has {'/'.join(s.materials)}" for s in idle if not material_ok(material, s)]
        if wrong:
            out.append(f"no idle printer with material {material} ({_names(wrong)})")
    if req.nozzle is not None:
        nozzle = req.nozzle
        wrong = [f"{s.name} has {_mm(s.nozzle)}" for s in idle if not nozzle_ok(nozzle, s)]
        if wrong:
            out.append(f"no idle printer with nozzle {_mm(nozzle)} ({_names(wrong)})")
    if req.size is not None:
        size = req.size
        wrong = [
            f"{s.name} is {' x '.join(_mm(d) for d in s.build_volume)}" for s in idle if not size_ok(size, s)
        ]
        if wrong:
            dims = " x ".join(_mm(d) for d in size)
            out.append(f"no idle printer big enough for {dims} mm ({_names(wrong)})")
    return out


def _unloaded(req: Requirements, slots: Sequence[PrinterSlot]) -> str | None:
    """When only the material is missing: which printers would take the job, and what they hold now."""
    if req.material is None:
        return None
    fitting = [s for s in slots if can_print(replace(req, material=None), s)]
    if not fitting:
        return None
    held = _names([f"{s.name} has {'/'.join(s.materials)}" for s in fitting])
    return f"no printer has {req.material.strip().upper()} loaded ({held})"


def waiting_reasons(
    queued: Sequence[Job],
    slots: Sequence[PrinterSlot],
    plan: Sequence[Assignment],
    *,
    now: float,
    last_start: float | None,
    min_gap_s: float = 0.0,
) -> dict[int, str]:
    """For each queued job the round did not start: why it waits, naming printers and settings."""
    started = {a.job_id for a in plan}
    taken = {a.printer: a.job_id for a in plan}
    gap_left = 0.0
    if min_gap_s > 0 and last_start is not None:
        gap_left = max(0.0, min_gap_s - (now - last_start))
    ordered = sorted(slots, key=lambda s: s.name)
    idle = [s for s in ordered if s.free]
    reasons: dict[int, str] = {}
    for job in queued:
        if job.state is not JobState.QUEUED or job.id in started:
            continue
        req = job.requirements
        capable = [s for s in ordered if can_print(req, s)]
        if not capable:
            reasons[job.id] = _unloaded(req, ordered) or (
                "no configured printer can take it now (the config changed since it was queued)"
            )
            continue
        free = [s for s in capable if s.free]
        parts: list[str] = []
        if free:
            unclaimed = [s for s in free if s.name not in taken]
            if not unclaimed:
                parts.append(_names([f"{s.name} went to job {taken[s.name]} first" for s in free]))
            elif gap_left > 0:  # staggered starts: one per min_start_gap
                parts.append(f"min_start_gap {gap_left:.0f} s left")
            else:
                parts.append("waits for the next scheduling round")
        else:
            parts.append(_names([slot_state(s) for s in capable]))
            parts += _mismatches(req, [s for s in idle if not can_print(req, s)])
        reasons[job.id] = "; ".join(parts)
    return reasons


# The countdown changes every round; the log line should not.
_COUNTDOWN = re.compile(r"\d+ s left")


class WaitingBoard:
    """The latest reason per queued job, shared by the dispatcher (writer) and the API (reader)."""

    def __init__(self) -> None:
        self._reasons: dict[int, str] = {}

    def get(self, job_id: int) -> str | None:
        return self._reasons.get(job_id)

    def update(self, reasons: dict[int, str]) -> None:
        """Replace every reason; log a job's reason once when it changes (not on each countdown tick)."""
        for job_id, reason in reasons.items():
            old = self._reasons.get(job_id)
            if old is None or _COUNTDOWN.sub("", old) != _COUNTDOWN.sub("", reason):
                log.info("job=%d waiting: %s", job_id, reason)
        self._reasons = dict(reasons)
