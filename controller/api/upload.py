"""An upload's request body as chunks that end in one plain error when the client leaves or the daemon
stops, instead of a `ClientDisconnect` or `CancelledError` traceback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from fastapi import Request
from starlette.requests import ClientDisconnect

from controller.core.errors import BadInput, FarmError, Unavailable


class UploadAborted(FarmError):
    """The body stopped arriving; nothing of it was kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"upload aborted: {reason}")
        self.reason = reason


class ClientLeft(UploadAborted, BadInput):
    """The client disconnected mid-upload (400, though nobody is left to read it)."""


class DaemonStopping(UploadAborted, Unavailable):
    """The daemon stops while the body is still arriving (503)."""


class UploadBody:
    """One request's body: counts the bytes received; a daemon stop interrupts only the wait for the
    next chunk, never a write to the disk or the store that follows the last one."""

    def __init__(self, request: Request, stopping: asyncio.Event | None) -> None:
        self.received = 0
        self._request = request
        self._stopping = stopping
        self._waiting = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async with contextlib.aclosing(self._request.stream()) as stream:
            while True:
                if self._stopping is not None and self._stopping.is_set():
                    raise DaemonStopping("the daemon is stopping")
                self._waiting = True
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return
                except ClientDisconnect:
                    raise ClientLeft("client disconnected") from None
                except asyncio.CancelledError:
                    # The daemon stops (our watch below, uvicorn's shutdown deadline or the end of the
                    # event loop) while the client is still sending: nothing is stored yet, so the
                    # request ends as a refused upload, which is all any of those cancellers want.
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
                    raise DaemonStopping("the daemon is stopping") from None
                finally:
                    self._waiting = False
                self.received += len(chunk)
                yield chunk

    @contextlib.contextmanager
    def stop_watch(self) -> Iterator[None]:
        """While inside, a daemon stop cancels the wait for the client (`chunks` turns it into
        UploadAborted), so an upload does not hold the shutdown until its client finishes."""
        task = asyncio.current_task()
        if self._stopping is None or task is None:
            yield
            return
        watch = asyncio.ensure_future(self._stopping.wait())

        def interrupt(done: asyncio.Task[bool]) -> None:
            if not done.cancelled() and self._waiting:
                task.cancel()

        watch.add_done_callback(interrupt)
        try:
            yield
        finally:
            watch.cancel()
