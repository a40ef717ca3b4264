"""A printer's figures between state changes: progress, temperatures, file, the host's words.

They change about once a second per printing printer. The live page must see them, but they are no
reason for a dispatch round, a notification or a timeline entry, so they go out as PrinterProgress (which
only the live updates take), at most once per PRINTER_PROGRESS_MIN_S per printer; a change inside the
window goes out at its end, so the page never keeps a stale last figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from controller.core.events import EventFeed, PrinterProgress
from controller.fleet.state import PrinterStatus

PRINTER_PROGRESS_MIN_S = 1.0

Figures = tuple[object, ...]


def figures(status: PrinterStatus) -> Figures:
    """What the page shows of `status` besides its state. Temperatures to 0.1 °C: a sensor's jitter
    below that is not news."""
    temps = tuple(
        (name, None if t.actual is None else round(t.actual, 1), t.target)
        for name, t in sorted(status.temperatures.items())
    )
    return (status.progress, status.file, status.detail, status.error, temps)


class ProgressThrottle:
    """The pure decision: when a change at `now` may go out. Times are a monotonic clock's seconds."""

    def __init__(self, min_s: float = PRINTER_PROGRESS_MIN_S) -> None:
        if min_s < 0:
            raise ValueError("the throttle's window cannot be negative")
        self.min_s = min_s
        self._sent_at: float | None = None
        self._held = False  # a change waits for the window's end

    def offer(self, now: float) -> float | None:
        """A change at `now`: publish after the returned delay (0.0: at once); None when a publish is
        due already (it will carry this change too)."""
        if self._held:
            return None
        if self._sent_at is None or now - self._sent_at >= self.min_s:
            self._sent_at = now
            return 0.0
        self._held = True
        return self._sent_at + self.min_s - now

    def due(self, now: float) -> bool:
        """The delay has passed: True when the held change must go out now."""
        if not self._held:
            return False
        self._held = False
        self._sent_at = now
        return True

    def covered(self, now: float) -> None:
        """A full printer change just went out with the latest figures: nothing is held any more."""
        self._held = False
        self._sent_at = now


class ProgressPublisher:
    """Publishes one printer's PrinterProgress through a ProgressThrottle, with a timer for held changes."""

    def __init__(
        self,
        feed: EventFeed,
        status: Callable[[], PrinterStatus],
        *,
        min_s: float = PRINTER_PROGRESS_MIN_S,
    ) -> None:
        self._feed = feed
        self._status = status  # read when it goes out: a held change carries the newest figures
        self.throttle = ProgressThrottle(min_s)
        self._timer: asyncio.TimerHandle | None = None

    def changed(self) -> None:
        """The figures moved without a state change."""
        delay = self.throttle.offer(time.monotonic())
        if delay == 0.0:
            self._publish()
        elif delay is not None:
            self._timer = asyncio.get_running_loop().call_later(delay, self._flush)

    def covered(self) -> None:
        """A PrinterChanged with the latest status went out: a held change need not."""
        self.throttle.covered(time.monotonic())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """The printer stops being watched: forget a held change (run again, it starts afresh)."""
        self.covered()

    def _flush(self) -> None:
        self._timer = None
        if self.throttle.due(time.monotonic()):
            self._publish()

    def _publish(self) -> None:
        self._feed.publish_nowait(PrinterProgress(self._status()))
