"""OctoPrint as a `PrinterDriver`: the REST client and the push socket, with OctoPrint's flags read
as a vendor-neutral HostState."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from devices.octoprint.client import OctoPrintClient
from devices.octoprint.models import PrinterFlags, Snapshot
from devices.octoprint.push import PushStream
from devices.printer import HostSnapshot, HostState, PushItem, RemoteFile, UploadResult


def host_state(flags: PrinterFlags) -> HostState:
    """OctoPrint's flags as a host state. Heat-up, finishing and cancelling count as printing."""
    if flags.error:
        return HostState.ERROR
    if flags.paused or flags.pausing:
        return HostState.PAUSED
    if flags.printing or flags.cancelling or flags.finishing:
        return HostState.PRINTING
    if flags.operational:
        return HostState.IDLE
    return HostState.OFFLINE


def host_snapshot(snapshot: Snapshot) -> HostSnapshot:
    """An OctoPrint snapshot in vendor-neutral terms."""
    return HostSnapshot(
        state=host_state(snapshot.flags),
        state_text=snapshot.state_text,
        file_name=snapshot.file_name,
        file_path=snapshot.file_path,
        progress=snapshot.progress,
        print_time_s=snapshot.print_time_s,
        print_time_left_s=snapshot.print_time_left_s,
        error=snapshot.error,
        temperatures=snapshot.temperatures,
    )


class OctoPrintDriver:
    """A PrinterDriver for one OctoPrint host; `client` stays available for OctoPrint-only calls."""

    def __init__(self, client: OctoPrintClient) -> None:
        self.client = client

    async def snapshot(self) -> HostSnapshot:
        return host_snapshot(await self.client.snapshot())

    @contextlib.asynccontextmanager
    async def push(self, *, idle_timeout: float) -> AsyncIterator[AsyncIterator[PushItem]]:
        async with (
            PushStream(self.client, idle_timeout=idle_timeout) as stream,
            contextlib.aclosing(_neutral(stream)) as items,
        ):
            yield items

    async def upload(
        self, source: Path, remote_name: str, *, select: bool = True, start: bool = True
    ) -> UploadResult:
        return await self.client.upload(source, remote_name, select=select, start=start)

    async def files(self) -> list[RemoteFile]:
        return await self.client.files()

    async def cancel(self) -> None:
        await self.client.cancel()

    async def pause(self) -> None:
        await self.client.pause()

    async def resume(self) -> None:
        await self.client.resume()

    async def close(self) -> None:
        await self.client.close()


async def _neutral(stream: PushStream) -> AsyncGenerator[PushItem, None]:
    async for item in stream:
        yield host_snapshot(item) if isinstance(item, Snapshot) else item
