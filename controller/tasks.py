"""Task helpers for the daemon's single TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


async def run_until_stopped(
    stop: asyncio.Event,
    work: Coroutine[Any, Any, None],
    *,
    on_stop: Callable[[], None] | None = None,
    grace: float = 10.0,
) -> None:
    """Run `work` until it returns or `stop` is set. On stop, call `on_stop` (a graceful request)
    and give `work` up to `grace` seconds, else cancel it. A crash of `work` propagates."""
    watcher = asyncio.ensure_future(stop.wait())
    worker = asyncio.ensure_future(work)
    try:
        await asyncio.wait({watcher, worker}, return_when=asyncio.FIRST_COMPLETED)
        if on_stop is not None and not worker.done():
            on_stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(worker), grace)
    finally:
        for task in (watcher, worker):
            task.cancel()
        await asyncio.gather(watcher, worker, return_exceptions=True)
    if not worker.cancelled() and (error := worker.exception()) is not None:
        raise error
