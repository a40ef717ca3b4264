"""Printer state as the farm sees it: the normalized state and a status value per printer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from devices.octoprint import Snapshot, Temperature


class PrinterState(StrEnum):
    """Normalized printer state (DESIGN.md). `awaiting_clear` is set by the job queue, not the host."""

    OFFLINE = "offline"
    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"
    ERROR = "error"
    AWAITING_CLEAR = "awaiting_clear"


def normalize(snapshot: Snapshot) -> PrinterState:
    """Map a host's snapshot to the farm's state. Heat-up, finishing and cancelling count as printing."""
    flags = snapshot.flags
    if flags.error:
        return PrinterState.ERROR
    if flags.paused or flags.pausing:
        return PrinterState.PAUSED
    if flags.printing or flags.cancelling or flags.finishing:
        return PrinterState.PRINTING
    if flags.operational:
        return PrinterState.IDLE
    return PrinterState.OFFLINE


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What the farm knows about one printer right now."""

    name: str
    state: PrinterState = PrinterState.OFFLINE
    detail: str = "not contacted yet"
    file: str | None = None
    progress: float | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)
    error: str | None = None
    last_seen: datetime | None = None
