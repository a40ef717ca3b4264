"""The store for async code, and the JobChanged events it publishes after each recorded job change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from controller.core.events import EventFeed, JobChanged
from controller.store.db import JobEvent, Store

P = ParamSpec("P")
T = TypeVar("T")


class AsyncStore:
    """Every call runs on one dedicated thread, in order. With a `feed`, each job event a call recorded
    is published as JobChanged once the call has returned (so after its transaction committed)."""

    def __init__(self, store: Store, feed: EventFeed | None = None) -> None:
        self.sync = store
        self.feed = feed
        store.record_events = feed is not None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        def work() -> tuple[T, list[tuple[int, JobEvent]]]:
            return fn(*args, **kwargs), self.sync.take_recorded()

        loop = asyncio.get_running_loop()
        result, recorded = await loop.run_in_executor(self._thread, work)
        if self.feed is not None:
            for event_id, event in recorded:
                self.feed.publish_nowait(
                    JobChanged(event_id, event.job_id, event.state, event.printer, event.at)
                )
        return result

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.sync.close()
