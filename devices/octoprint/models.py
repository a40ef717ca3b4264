"""Typed results of the OctoPrint driver: what the controller sees instead of OctoPrint's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Temperature:
    """One heater: measured and target temperature in °C (target 0 = off)."""

    actual: float | None
    target: float | None


@dataclass(frozen=True, slots=True)
class PrinterFlags:
    """What the printer is doing, as OctoPrint's state flags say (vendor-neutral names)."""

    operational: bool = False
    ready: bool = False
    printing: bool = False
    paused: bool = False
    pausing: bool = False
    cancelling: bool = False
    finishing: bool = False
    error: bool = False
    closed: bool = True


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A printer host's current state: from a REST poll or a push `current` frame."""

    state_text: str
    flags: PrinterFlags
    file_name: str | None = None
    file_path: str | None = None
    progress: float | None = None
    print_time_s: float | None = None
    print_time_left_s: float | None = None
    error: str | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)


class EventKind(StrEnum):
    """The push events the controller cares about."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    PRINT_STARTED = "print_started"
    PRINT_DONE = "print_done"
    PRINT_FAILED = "print_failed"
    PRINT_CANCELLED = "print_cancelled"
    PRINT_PAUSED = "print_paused"
    PRINT_RESUMED = "print_resumed"
    STATE_CHANGED = "state_changed"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class PrinterEvent:
    """One push event. `reason` is `cancelled` or `error` on PRINT_FAILED."""

    kind: EventKind
    file_name: str | None = None
    file_path: str | None = None
    reason: str | None = None
    error: str | None = None
    elapsed_s: float | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """`/api/version`: the server and API versions."""

    server: str
    api: str
    text: str


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """`/api/connection`: the serial link between OctoPrint and the printer."""

    state: str
    port: str | None
    baudrate: int | None


@dataclass(frozen=True, slots=True)
class UploadResult:
    """Outcome of an upload. OctoPrint answers 201 even when the print did not start: see `started`."""

    name: str
    path: str
    selected: bool
    started: bool


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file stored on the printer host, with the host's own count of prints that ended with it."""

    name: str
    path: str
    size: int | None
    successes: int = 0
    failures: int = 0

    @property
    def ever_printed(self) -> bool:
        return self.successes + self.failures > 0
