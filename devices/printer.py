"""What the controller needs from a printer host, in vendor-neutral types: the `PrinterDriver` protocol.

A driver reports the host's own view (`HostState`: it knows nothing of beds, jobs or the farm), pushes
snapshots and events as they happen, uploads and starts files, lists the files it keeps with their print
history, and stops or pauses a print. Every call raises the `devices.errors` hierarchy on failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class HostState(StrEnum):
    """The printer host's state. Heat-up, finishing and cancelling count as printing."""

    OFFLINE = "offline"
    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Temperature:
    """One heater: measured and target temperature in °C (target 0 = off)."""

    actual: float | None
    target: float | None


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """A printer host's current state: from a poll or a pushed frame. `state_text` is the host's words."""

    state: HostState
    state_text: str
    file_name: str | None = None
    file_path: str | None = None
    progress: float | None = None
    print_time_s: float | None = None
    print_time_left_s: float | None = None
    error: str | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)


class EventKind(StrEnum):
    """The pushed events the controller cares about."""

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
    """One pushed event. `reason` is `cancelled` or `error` on PRINT_FAILED; `state` is the host state a
    STATE_CHANGED event reports (None for the host's passing states: connecting, detecting, …)."""

    kind: EventKind
    file_name: str | None = None
    file_path: str | None = None
    reason: str | None = None
    error: str | None = None
    elapsed_s: float | None = None
    state: HostState | None = None


@dataclass(frozen=True, slots=True)
class UploadResult:
    """Outcome of an upload: stored, and whether the print `started` (a busy host stores, not starts)."""

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


PushItem = HostSnapshot | PrinterEvent


class PrinterDriver(Protocol):
    """One printer host. Errors are `devices.errors`; DeviceBusy means "not now" (already printing …)."""

    async def snapshot(self) -> HostSnapshot:
        """The host's state now, asked afresh (never a cached or pushed one)."""
        ...

    def push(self, *, idle_timeout: float) -> AbstractAsyncContextManager[AsyncIterator[PushItem]]:
        """`async with driver.push(idle_timeout=t) as items: async for item in items: ...`

        Snapshots and events come in the host's order; the first item is the current snapshot.
        DeviceUnavailable when the stream drops or stays silent for `idle_timeout` seconds.
        """
        ...

    async def upload(
        self, source: Path, remote_name: str, *, select: bool = True, start: bool = True
    ) -> UploadResult:
        """Store `source` on the host as `remote_name`; select it, and start it if asked and idle."""
        ...

    async def files(self) -> list[RemoteFile]:
        """Every print file the host keeps, with its print history."""
        ...

    async def cancel(self) -> None:
        """Cancel the running print; DeviceBusy when nothing is printing."""
        ...

    async def pause(self) -> None:
        """Pause the running print; DeviceBusy when nothing is printing."""
        ...

    async def resume(self) -> None:
        """Resume a paused print; DeviceBusy when not paused."""
        ...

    async def close(self) -> None:
        """Release what the driver holds (connections it opened itself)."""
        ...
