"""Printer state as the farm sees it: a host's state plus the farm's own `awaiting_clear`, and a status
value per printer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from devices.printer import HostState, Temperature


class PrinterState(StrEnum):
    """The farm's printer state (DESIGN.md). `awaiting_clear` is the farm's own, never a host's."""

    OFFLINE = "offline"
    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"
    ERROR = "error"
    AWAITING_CLEAR = "awaiting_clear"


_FROM_HOST = {
    HostState.OFFLINE: PrinterState.OFFLINE,
    HostState.IDLE: PrinterState.IDLE,
    HostState.PRINTING: PrinterState.PRINTING,
    HostState.PAUSED: PrinterState.PAUSED,
    HostState.ERROR: PrinterState.ERROR,
}


def farm_state(state: HostState) -> PrinterState:
    """The farm's state for what a printer host reports (before the bed rule adds awaiting_clear)."""
    return _FROM_HOST[state]


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
