"""A printer host in memory: a `PrinterDriver` that tests script, for the controller's decisions.

It behaves as an OctoPrint host does where the controller's rules depend on it: an upload with start
prints only on an idle host (the file is stored either way), the host keeps a per-file print history,
events come before the frame that shows their state, and a frame built before an event can still
arrive after it (`stale`). Nothing moves by itself: the test says when a print advances or ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from pathlib import Path

from devices.errors import DeviceBadRequest, DeviceBusy, DeviceError, DeviceUnavailable, DeviceUnreachable
from devices.printer import (
    EventKind,
    HostSnapshot,
    HostState,
    PrinterEvent,
    PushItem,
    RemoteFile,
    Temperature,
    UploadResult,
)

_TEXT = {
    HostState.OFFLINE: "Offline",
    HostState.IDLE: "Operational",
    HostState.PRINTING: "Printing",
    HostState.PAUSED: "Paused",
    HostState.ERROR: "Offline after error",
}
_RUNNING = (HostState.PRINTING, HostState.PAUSED)


class SimPrinter:
    """An in-memory printer host. The controller calls the PrinterDriver methods; a test calls the rest.

    `stale_frames`: after each event, push a frame with the state from before it (as a `current` frame
    built just before the event would be), and no fresh frame until `send_frame()`.
    `slow_cancel`: `cancel()` is accepted and the print goes on ("Cancelling") until `cancel_print()`.
    """

    def __init__(self, name: str = "sim", *, stale_frames: bool = False, slow_cancel: bool = False) -> None:
        self.name = name
        self.stale_frames = stale_frames
        self.slow_cancel = slow_cancel
        self.cancelling = False
        self.state = HostState.IDLE
        self.file: str | None = None
        self.progress: float | None = None
        self.error: str | None = None
        self.temperatures = {"tool0": Temperature(21.0, 0.0), "bed": Temperature(21.0, 0.0)}
        self.history: dict[str, RemoteFile] = {}
        self.uploads: list[str] = []  # every file name an upload stored, in order
        self.commands: list[str] = []  # cancel, pause, resume as the controller asked them
        self.closed = False
        self._offline = False
        self._refusal: DeviceError | None = None
        self._streams: list[asyncio.Queue[PushItem | None]] = []  # None: the stream drops

    # --- PrinterDriver ---------------------------------------------------------------------------------

    async def snapshot(self) -> HostSnapshot:
        self._check_reachable()
        return self.current()

    @contextlib.asynccontextmanager
    async def push(self, *, idle_timeout: float) -> AsyncIterator[AsyncIterator[PushItem]]:
        self._check_reachable()
        queue: asyncio.Queue[PushItem | None] = asyncio.Queue()
        queue.put_nowait(self.current())
        self._streams.append(queue)
        try:
            async with contextlib.aclosing(self._items(queue, idle_timeout)) as items:
                yield items
        finally:
            self._streams.remove(queue)

    async def upload(
        self, source: Path, remote_name: str, *, select: bool = True, start: bool = True
    ) -> UploadResult:
        self._check_reachable()
        if self._refusal is not None:
            raise self._refusal
        try:
            size = (await asyncio.to_thread(source.stat)).st_size
        except OSError as exc:
            raise DeviceBadRequest(f"cannot read {source.name}: {exc.strerror}") from None
        if remote_name == self.file and self.state in _RUNNING:
            raise DeviceBusy(f"{self.name}: 409 {remote_name} is being printed")
        known = self.history.get(remote_name)
        self.history[remote_name] = (
            replace(known, size=size) if known else RemoteFile(remote_name, remote_name, size)
        )
        self.uploads.append(remote_name)
        started = start and self.state is HostState.IDLE
        if started:
            self.start_print(remote_name)
        return UploadResult(remote_name, remote_name, selected=select, started=started)

    async def files(self) -> list[RemoteFile]:
        self._check_reachable()
        return list(self.history.values())

    async def cancel(self) -> None:
        await self._command("cancel", _RUNNING)
        if self.slow_cancel:
            self.cancelling = True
            self.send_frame()
        else:
            self.cancel_print()

    async def pause(self) -> None:
        await self._command("pause", (HostState.PRINTING,))
        self._change([PrinterEvent(EventKind.PRINT_PAUSED, self.file, self.file)], state=HostState.PAUSED)

    async def resume(self) -> None:
        await self._command("resume", (HostState.PAUSED,))
        self._change([PrinterEvent(EventKind.PRINT_RESUMED, self.file, self.file)], state=HostState.PRINTING)

    async def close(self) -> None:
        self.closed = True
        self._drop_streams()

    # --- what a test makes happen ----------------------------------------------------------------------

    def current(self) -> HostSnapshot:
        """The host's state now, as a frame or a poll shows it."""
        state = HostState.OFFLINE if self._offline else self.state
        return HostSnapshot(
            state=state,
            state_text="Cancelling" if self.cancelling and state is HostState.PRINTING else _TEXT[state],
            file_name=self.file,
            file_path=self.file,
            progress=self.progress,
            error=self.error,
            temperatures=dict(self.temperatures),
        )

    def start_print(self, name: str) -> None:
        """A print starts: by an upload, by hand at the printer, or before the controller restarted."""
        if self.state is not HostState.IDLE:
            raise RuntimeError(f"{self.name} is {self.state}: a print cannot start")
        self.history.setdefault(name, RemoteFile(name, name, None))
        self._change(
            [PrinterEvent(EventKind.PRINT_STARTED, name, name)],
            state=HostState.PRINTING,
            file=name,
            progress=0.0,
        )

    def advance(self, progress: float) -> None:
        """The running print has reached `progress` percent (a frame, no event)."""
        self._running("advance")
        self.progress = progress
        self.send_frame()

    def finish(self, *, stale: bool | None = None) -> None:
        """The running print ends well: PrintDone, and one more success in the file's history."""
        name = self._running("finish")
        self._count(name, success=True)
        self._change(
            [PrinterEvent(EventKind.PRINT_DONE, name, name)], stale, state=HostState.IDLE, progress=100.0
        )

    def fail(self, error: str = "Thermal runaway", *, stale: bool | None = None) -> None:
        """The running print ends in a printer error: Error and PrintFailed, the host in error."""
        name = self._running("fail")
        self._count(name, success=False)
        events = [
            PrinterEvent(EventKind.ERROR, error=error),
            PrinterEvent(EventKind.PRINT_FAILED, name, name, reason="error", error=error),
        ]
        self._change(events, stale, state=HostState.ERROR, error=error)

    def cancel_print(self, *, stale: bool | None = None) -> None:
        """The running print is cancelled (at the printer, or by `cancel()`): PrintCancelled."""
        name = self._running("cancel")
        self.cancelling = False
        self._count(name, success=False)
        self._change([PrinterEvent(EventKind.PRINT_CANCELLED, name, name)], stale, state=HostState.IDLE)

    def lose_print(self) -> None:
        """The host forgets the running print (restarted mid-print): idle, no event, no history."""
        self._running("lose")
        self.state, self.progress = HostState.IDLE, None
        self.send_frame()

    def clear_error(self) -> None:
        """The printer is reconnected after an error: idle again."""
        self.state, self.error = HostState.IDLE, None
        self.send_frame()

    def go_offline(self) -> None:
        """The host stops answering: every call raises DeviceUnreachable and open push streams drop."""
        self._offline = True
        self._drop_streams()

    def come_back(self) -> None:
        """The host answers again, in the state it was in."""
        self._offline = False

    def refuse_uploads(self, error: DeviceError | None = None) -> None:
        """Every upload fails with `error` (default: a refusal, as a 4xx answer) until `accept_uploads()`."""
        self._refusal = error or DeviceBadRequest(f"{self.name}: 400 upload refused")

    def accept_uploads(self) -> None:
        self._refusal = None

    def send_frame(self) -> None:
        """Push the current state to every open stream."""
        self._push(self.current())

    # --- inside ----------------------------------------------------------------------------------------

    def _check_reachable(self) -> None:
        if self._offline:
            raise DeviceUnreachable(f"{self.name}: cannot connect (simulated host offline)")

    async def _command(self, command: str, allowed: tuple[HostState, ...]) -> None:
        await asyncio.sleep(0)  # the request is on its way: other tasks run meanwhile, as over a socket
        self._check_reachable()
        self.commands.append(command)
        if self.state not in allowed:
            raise DeviceBusy(f"{self.name}: 409 cannot {command}: the printer is {self.state}")

    def _running(self, what: str) -> str:
        if self.state not in _RUNNING or self.file is None:
            raise RuntimeError(f"{self.name} is {self.state}: nothing to {what}")
        return self.file

    def _count(self, name: str, *, success: bool) -> None:
        known = self.history.get(name) or RemoteFile(name, name, None)
        if success:
            self.history[name] = replace(known, successes=known.successes + 1)
        else:
            self.history[name] = replace(known, failures=known.failures + 1)

    def _change(
        self,
        events: list[PrinterEvent],
        stale: bool | None = None,
        *,
        state: HostState,
        file: str | None = None,
        progress: float | None = None,
        error: str | None = None,
    ) -> None:
        """Move to `state`, push the events, then a frame: the new state's, or the old one's if stale."""
        before = self.current()
        self.state = state
        self.file = file or self.file
        self.progress = progress if progress is not None else self.progress
        self.error = error
        for event in events:
            self._push(event)
        self._push(before if (self.stale_frames if stale is None else stale) else self.current())

    def _push(self, item: PushItem) -> None:
        if self._offline:
            return  # nobody hears a host that is down
        for queue in self._streams:
            queue.put_nowait(item)

    def _drop_streams(self) -> None:
        for queue in self._streams:
            queue.put_nowait(None)

    async def _items(
        self, queue: asyncio.Queue[PushItem | None], idle_timeout: float
    ) -> AsyncGenerator[PushItem, None]:
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    item = await queue.get()
            except TimeoutError:
                raise DeviceUnavailable(f"{self.name}: push stream silent") from None
            if item is None:
                raise DeviceUnavailable(f"{self.name}: push stream closed")
            yield item
