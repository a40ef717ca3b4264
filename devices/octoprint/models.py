"""Typed results of the OctoPrint client: what the controller sees instead of OctoPrint's JSON.

Events, uploads, remote files and temperatures are the vendor-neutral types of `devices.printer`;
the snapshot here keeps OctoPrint's own state flags (`OctoPrintDriver` turns them into a HostState).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.printer import EventKind, PrinterEvent, RemoteFile, Temperature, UploadResult

__all__ = [
    "ConnectionInfo",
    "EventKind",
    "PrinterEvent",
    "PrinterFlags",
    "RemoteFile",
    "Snapshot",
    "Temperature",
    "UploadResult",
    "VersionInfo",
]


@dataclass(frozen=True, slots=True)
class PrinterFlags:
    """What the printer is doing, as OctoPrint's state flags say."""

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
    """An OctoPrint host's current state: from a REST poll or a push `current` frame."""

    state_text: str
    flags: PrinterFlags
    file_name: str | None = None
    file_path: str | None = None
    progress: float | None = None
    print_time_s: float | None = None
    print_time_left_s: float | None = None
    error: str | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)


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
