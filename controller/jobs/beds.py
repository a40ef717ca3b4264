"""Bed state: whether each printer's bed is known to be empty. One owner, written through at once.

The coordinators (a print they see leaves a part), the dispatcher (a dispatch, a failed upload) and
the queue (an operator's clear) all change it here; the store keeps it across restarts. A bed whose
state was never recorded counts as used: an operator confirms it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from controller.store import AsyncStore

log = logging.getLogger(__name__)


class Beds:
    """Each printer's bed: clear or used. Reads come from memory; each change is sent to the store's
    writer at once (in order, so the last change is what the store keeps); `written()` waits for them."""

    def __init__(self, clear: Mapping[str, bool], store: AsyncStore | None = None) -> None:
        self._clear = dict(clear)
        self._store = store  # None: in memory only (tests of the fleet without a store)
        self._writes: set[asyncio.Future[None]] = set()

    @classmethod
    async def load(cls, store: AsyncStore, printers: Iterable[str]) -> Beds:
        """Seeded from the store; an unrecorded bed is used."""
        names = list(printers)
        known = await store.call(lambda: {name: store.sync.bed_clear(name) is True for name in names})
        return cls(known, store)

    def is_clear(self, printer: str) -> bool:
        return self._clear.get(printer, False)

    def mark_used(self, printer: str) -> bool:
        """A print is about to start or has run there; True if the bed was clear until now."""
        return self._set(printer, clear=False)

    def clear(self, printer: str) -> bool:
        """An operator (or proof that nothing printed) says the bed is empty; True if it was used."""
        return self._set(printer, clear=True)

    def dispatched(self, printer: str) -> None:
        """The store recorded this bed used with the job's dispatch (Store.start_dispatch)."""
        self._clear[printer] = False

    async def written(self) -> None:
        """Return once every change made so far is committed to the store."""
        while self._writes:
            await asyncio.gather(*self._writes)

    def _set(self, printer: str, *, clear: bool) -> bool:
        if self._clear.get(printer) is clear:
            return False
        self._clear[printer] = clear
        if self._store is not None:
            store = self._store
            # Tasks start in the order they were made and the store runs calls in order on one
            # thread, so the store ends with the latest change.
            write = asyncio.ensure_future(store.call(store.sync.set_bed_clear, printer, clear))
            self._writes.add(write)
            write.add_done_callback(self._written)
        return True

    def _written(self, write: asyncio.Future[None]) -> None:
        self._writes.discard(write)
        if not write.cancelled() and write.exception() is not None:
            log.error("bed state not saved: %s", write.exception())
