"""What the simulated plug and scale share: the broker they publish to, a printer they follow, and
waiting that a stop request ends at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from devices.errors import DeviceError
from devices.octoprint import OctoPrintClient, host_snapshot
from devices.printer import HostSnapshot, HostState

log = logging.getLogger(__name__)

OFFLINE = HostSnapshot(state=HostState.OFFLINE, state_text="Offline")


@dataclass(frozen=True, slots=True)
class Broker:
    """Where a simulated device publishes: host, port and an optional login."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def client(self, identifier: str) -> aiomqtt.Client:
        """A new MQTT 3.1.1 client with a clean session, as plug firmware connects."""
        return aiomqtt.Client(
            self.host, self.port, identifier=identifier, username=self.username, password=self.password
        )


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(seconds, 0.0)):
            await stop.wait()


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel and await tasks. On Python 3.11 a cancel arriving as an awaited wait_for completes is
    swallowed (aiomqtt's subscribe does that), so a task still running after a second is cancelled again."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.debug("task ended with %r while cancelled", task.exception())


async def first_of(*coros: Coroutine[Any, Any, object]) -> None:
    """Run the coroutines until the first ends; cancel the rest; re-raise what the first raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_all(tasks)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class PrinterWatch:
    """Polls one OctoPrint host every `poll_s` and hands each snapshot to `on_snapshot`; an unreachable
    host counts as offline. Logs once when the host goes away and once when it is back."""

    def __init__(
        self,
        printer: OctoPrintClient,
        on_snapshot: Callable[[HostSnapshot], None],
        *,
        name: str,
        poll_s: float = 0.5,
    ) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self.printer = printer
        self.name = name
        self.poll_s = poll_s
        self.last: HostSnapshot = OFFLINE
        self._on_snapshot = on_snapshot
        self._down = False

    async def poll(self) -> HostSnapshot:
        """One poll: the host's snapshot, or OFFLINE when it does not answer."""
        try:
            snapshot = host_snapshot(await self.printer.snapshot())
        except DeviceError as exc:
            if not self._down:
                log.warning("sim=%s printer=%s unreachable, counted as offline: %s",
                            self.name, self.printer.display_url, exc)  # fmt: skip
                self._down = True
            snapshot = OFFLINE
        else:
            if self._down:
                log.info("sim=%s printer=%s answers again", self.name, self.printer.display_url)
                self._down = False
        self.last = snapshot
        self._on_snapshot(snapshot)
        return snapshot

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()
            await pause(stop, self.poll_s)
