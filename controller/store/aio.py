"""The store for async code, and the JobChanged events it publishes after each recorded job change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from controller.core.events import EventFeed, JobChanged
from controller.store.db import Store

P = ParamSpec("P")
T = TypeVar("T")


class AsyncStore:
    """Every call runs on one dedicated thread, in order. With a `feed`, each job event a call recorded
    is published as JobChanged once the call has returned (so after its transaction committed)."""

    def __init__(self, store: Store, feed: EventFeed | None = None) -> None:
        self.sync = store
        self.feed = feed
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._published = store.newest_event_id

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._thread, lambda: fn(*args, **kwargs))
        if self.feed is not None and self.sync.newest_event_id > self._published:
            await self._publish_new(self.feed)
        return result

    async def _publish_new(self, feed: EventFeed) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await loop.run_in_executor(self._thread, self.sync.events_after, self._published)
            for event_id, event, _job in batch:
                self._published = max(self._published, event_id)
                feed.publish_nowait(JobChanged(event_id, event.job_id, event.state, event.printer, event.at))
            if not batch:
                return

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.sync.close()
