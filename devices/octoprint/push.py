"""OctoPrint's push API: passive login, websocket auth, `current` snapshots and events, re-auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import aiohttp

from devices.errors import DeviceUnavailable
from devices.octoprint import parse
from devices.octoprint.client import OctoPrintClient
from devices.octoprint.models import PrinterEvent, Snapshot
from devices.urls import redact_url

PushItem = Snapshot | PrinterEvent

_SUBSCRIBE = {
    "subscribe": {
        "state": {"logs": False, "messages": False},
        "events": True,
        "plugins": False,
    }
}


class PushStream:
    """`async with PushStream(client) as stream: async for item in stream: ...`.

    Yields a Snapshot for each `current`/`history` frame and a PrinterEvent for each event of
    interest. Raises DeviceUnavailable when the socket closes or stays silent for `idle_timeout`.
    """

    def __init__(self, client: OctoPrintClient, *, idle_timeout: float = 30.0, throttle: int = 2):
        self._client = client
        self._idle_timeout = idle_timeout
        self._throttle = throttle
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.reauths = 0

    async def __aenter__(self) -> Self:
        url = self._client.base_url.replace("http", "ws", 1) + "/sockjs/websocket"
        shown = redact_url(url)  # the URL may carry a user and password: never in a message
        auth = await self._client.passive_login()
        try:
            async with asyncio.timeout(self._client.timeout):
                self._ws = await self._client.session.ws_connect(
                    url, headers=self._client.headers, heartbeat=self._idle_timeout / 2
                )
                await self._send_auth(auth)
                await self._ws.send_json(_SUBSCRIBE)
                await self._ws.send_json({"throttle": self._throttle})
        except TimeoutError:
            await self._close()
            raise DeviceUnavailable(f"{shown}: push connect timed out") from None
        except aiohttp.ClientError as exc:
            await self._close()
            raise DeviceUnavailable(f"{shown}: push connect failed: {type(exc).__name__}") from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def _send_auth(self, auth: tuple[str, str]) -> None:
        assert self._ws is not None
        await self._ws.send_json({"auth": f"{auth[0]}:{auth[1]}"})

    def __aiter__(self) -> AsyncIterator[PushItem]:
        return self._items()

    async def _items(self) -> AsyncIterator[PushItem]:
        while True:
            for item in await self._next_frame():
                yield item

    async def _next_frame(self) -> list[PushItem]:
        ws = self._ws
        if ws is None:
            raise DeviceUnavailable(f"{self._client.display_url}: push stream not open")
        try:
            msg = await ws.receive(timeout=self._idle_timeout)
        except TimeoutError:
            raise DeviceUnavailable(f"{self._client.display_url}: push stream silent") from None
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise DeviceUnavailable(f"{self._client.display_url}: push stream closed ({msg.type.name})")
        try:
            frame = json.loads(msg.data)
        except ValueError:
            return []
        if not isinstance(frame, dict):
            return []
        if "reauthRequired" in frame:  # user modified, logged out or session stale: log in again
            await self._send_auth(await self._client.passive_login())
            self.reauths += 1
            return []
        return _decode(frame)


def _decode(frame: dict[str, Any]) -> list[PushItem]:
    items: list[PushItem] = []
    for key in ("history", "current"):
        if key in frame:
            items.append(parse.snapshot_from_push(frame[key]))
    if "event" in frame:
        event = parse.event_from_push(frame["event"])
        if event is not None:
            items.append(event)
    return items
