"""Printer state as the farm sees it: a host's state plus the farm's own `awaiting_clear`, a status
value per printer, and the state a pushed event implies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from devices.printer import EventKind, HostState, PrinterEvent, Temperature


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


_EVENT_STATES = {
    EventKind.PRINT_STARTED: PrinterState.PRINTING,
    EventKind.PRINT_RESUMED: PrinterState.PRINTING,
    EventKind.PRINT_PAUSED: PrinterState.PAUSED,
    EventKind.PRINT_DONE: PrinterState.IDLE,
    EventKind.PRINT_CANCELLED: PrinterState.IDLE,
    EventKind.ERROR: PrinterState.ERROR,
    EventKind.DISCONNECTED: PrinterState.OFFLINE,
}


def state_of_event(event: PrinterEvent) -> PrinterState | None:
    """The printer state an event implies, or None when it implies none."""
    if event.kind is EventKind.PRINT_FAILED:
        # Cancelled: the printer is idle again; an error leaves it in error (the Error event says why).
        return PrinterState.IDLE if event.reason == "cancelled" else PrinterState.ERROR
    if event.kind is EventKind.STATE_CHANGED:
        return None if event.state is None else farm_state(event.state)
    return _EVENT_STATES.get(event.kind)
