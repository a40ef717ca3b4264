"""The telemetry writer: batches points by size and age, writes them to InfluxDB, and spools them to
disk while the database is unreachable (replayed in order once it answers again).

Producers `await put(line)` into a bounded queue, so a flood slows the producer down instead of
growing memory; during an outage batches go to the bounded disk spool, so the queue keeps draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from controller.core.availability import Availability, Backoff
from controller.tasks import run_until_stopped
from controller.telemetry.spool import Spool
from devices.influx import InfluxAuthError, InfluxRejected, InfluxUnavailable, Writer

log = logging.getLogger(__name__)

# The end of a burst (a backlog drained after an outage) is written once no line came for QUIET_S,
# instead of waiting for flush_interval: the batch after a full one, or one of at least
# 1/QUIET_FRACTION of batch_size. A trickle of small batches still goes out once per flush_interval.
QUIET_S = 0.1
QUIET_FRACTION = 5
UPSTREAM_WAIT_S = 5.0


@dataclass
class WriterStats:
    """Counters for /metrics."""

    written: int = 0
    spooled: int = 0
    rejected: int = 0  # points the database refused (dropped, counted)


class TelemetryWriter:
    """One per daemon; `run(stop)` in the TaskGroup. On stop, what is queued is written or spooled."""

    def __init__(
        self,
        writer: Writer,
        spool: Spool,
        *,
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        queue_size: int = 50_000,
        retry_max: float = 30.0,
    ) -> None:
        self.writer = writer
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.stats = WriterStats()
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        # The collector sleeps until `_wanted` lines are queued (one wake-up per batch, not per line).
        self._wanted = batch_size
        self._enough = asyncio.Event()
        self._after_full = False  # the last batch was full: a burst is under way
        self._availability = Availability(
            log,
            Backoff(min(1.0, retry_max), retry_max),
            down_message="telemetry database %s",
            up_message="telemetry database back after %.0fs; spool replayed",
        )
        self._retry_at = 0.0
        self._last_reject_log = 0.0
        # Lines ever queued, and of those (in the same order) how many are settled: written, spooled to
        # disk or refused by the database. A consumer that must not lose a point (the job points) moves
        # its stored cursor only past what is settled.
        self.queued = 0
        self.settled = 0
        # Producers that hand over what they hold when the daemon stops (the sink): the last flush
        # waits for each (UPSTREAM_WAIT_S at most) and takes their lines beyond the queue's bound.
        self.upstream: list[asyncio.Event] = []
        self._final: list[str] = []
        self._in_hand: list[str] = []

    async def put(self, line: str) -> int:
        """Queue one line-protocol line (waits while the queue is full); returns its sequence number,
        settled once `self.settled` reaches it."""
        await self._queue.put(line)
        self.queued += 1
        if self._queue.qsize() >= self._wanted:
            self._enough.set()
        return self.queued

    def put_final(self, lines: list[str]) -> None:
        """Lines handed over at a stop, for the last flush (no wait: the queue may be full)."""
        self._final.extend(lines)
        self.queued += len(lines)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await run_until_stopped(stop, self._loop())
        finally:
            for done in self.upstream:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), UPSTREAM_WAIT_S)
            await self._final_flush()
            await self.writer.close()

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            if batch:
                await self._handle(batch)
                self.settled += len(batch)
            self._in_hand = []
            if self.spool and time.monotonic() >= self._retry_at:
                await self._drain()

    async def _collect(self) -> list[str]:
        """Up to batch_size lines, at most flush_interval after the first (sooner at the end of a burst,
        see QUIET_S); [] when a retry is due."""
        first_timeout = max(0.0, self._retry_at - time.monotonic()) if self.spool else None
        try:
            batch = [await asyncio.wait_for(self._queue.get(), first_timeout)]
        except TimeoutError:
            return []
        # Taken from the queue but not yet written or spooled: a stop now must not lose it (the
        # ingest acknowledged these readings already).
        self._in_hand = batch
        batch = await self._fill(batch)
        self._after_full = len(batch) >= self.batch_size
        return batch

    async def _fill(self, batch: list[str]) -> list[str]:
        deadline = time.monotonic() + self.flush_interval  # a batch's age counts from its first line
        while True:
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            remaining = deadline - time.monotonic()
            if len(batch) >= self.batch_size or remaining <= 0:
                return batch
            self._wanted = min(self.batch_size - len(batch), self._queue.maxsize or self.batch_size)
            self._enough.clear()
            burst = self._after_full or len(batch) * QUIET_FRACTION >= self.batch_size
            try:
                await asyncio.wait_for(self._enough.wait(), min(remaining, QUIET_S) if burst else remaining)
            except TimeoutError:
                if burst and self._queue.empty():
                    return batch  # the burst is over
            finally:
                self._wanted = self.batch_size
            # The queue may have filled the batch, or the age is up: both checked at the top.

    async def _handle(self, batch: list[str]) -> None:
        if self.spool or self._availability.is_down:
            # Keep order: while anything is spooled, new lines queue up behind it on disk.
            await self._to_spool(batch)
            return
        try:
            await self._write(batch)
        except InfluxUnavailable as exc:
            self._went_down(exc)
            await self._to_spool(batch)

    async def _drain(self) -> None:
        """Replay the spool oldest first until it is empty or the database fails again."""
        while True:
            segment = await asyncio.to_thread(self.spool.oldest)
            if segment is None:
                break
            path, lines = segment
            try:
                for start in range(0, len(lines), self.batch_size):
                    await self._write(lines[start : start + self.batch_size])
            except InfluxUnavailable as exc:
                self._went_down(exc)
                return
            await asyncio.to_thread(self.spool.remove, path)
        self._availability.up()

    async def _write(self, lines: list[str]) -> None:
        """Write, splitting a refused batch to drop only the bad points. Raises InfluxUnavailable."""
        try:
            await self.writer.write(lines)
        except InfluxRejected as exc:
            if len(lines) == 1:
                self.stats.rejected += 1
                now = time.monotonic()
                if now - self._last_reject_log > 60:
                    self._last_reject_log = now
                    log.warning(
                        "telemetry point refused by the database (%d so far): %s", self.stats.rejected, exc
                    )
                return
            middle = len(lines) // 2
            await self._write(lines[:middle])
            await self._write(lines[middle:])
            return
        self.stats.written += len(lines)

    async def _to_spool(self, batch: list[str]) -> None:
        await asyncio.to_thread(self.spool.append, batch)
        self.stats.spooled += len(batch)

    def _went_down(self, exc: InfluxUnavailable) -> None:
        kind = "refuses our credentials" if isinstance(exc, InfluxAuthError) else "unreachable"
        self._retry_at = time.monotonic() + self._availability.down(f"{kind}, spooling to disk: {exc}")

    async def _final_flush(self) -> None:
        # A batch whose write the stop cut short may have landed: sent again it is the same points
        # (same series and times), which InfluxDB stores once.
        lines: list[str] = self._in_hand
        self._in_hand = []
        while not self._queue.empty():
            lines.append(self._queue.get_nowait())
        lines += self._final
        self._final.clear()
        if not lines:
            return
        with contextlib.suppress(InfluxUnavailable, TimeoutError):
            if not self.spool and not self._availability.is_down:
                await asyncio.wait_for(self._write(lines), 5)
                self.settled += len(lines)
                return
        await self._to_spool(lines)
        self.settled += len(lines)
