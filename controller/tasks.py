"""Task helpers for the daemon's single TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

# How long a cancelled task may take to unwind before it is cancelled again. On Python 3.11 a
# cancellation that arrives as an awaited asyncio.wait_for completes is swallowed (fixed in 3.12):
# aiomqtt's subscribe does this when the SUBACK and our stop arrive together, and the ingest then
# waited for messages forever instead of stopping.
UNWIND_S = 1.0


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
    worker = asyncio.get_running_loop().create_task(work, name=getattr(work, "__qualname__", None))
    try:
        await asyncio.wait({watcher, worker}, return_when=asyncio.FIRST_COMPLETED)
        if on_stop is not None and not worker.done():
            on_stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(worker), grace)
    finally:
        for task in (watcher, worker):
            task.cancel()
        await _unwind(worker)
        await asyncio.gather(watcher, worker, return_exceptions=True)
    if not worker.cancelled() and (error := worker.exception()) is not None:
        raise error


async def _unwind(task: asyncio.Task[None]) -> None:
    """Wait for a cancelled task to finish, cancelling it again each UNWIND_S it hangs."""
    while not task.done():
        await asyncio.wait({task}, timeout=UNWIND_S)
        if not task.done():
            log.warning(
                "%s still unwinding %.1fs after it was cancelled; cancelling it again",
                task.get_name(),
                UNWIND_S,
            )
            task.cancel()
