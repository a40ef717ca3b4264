"""Which news of a printer's state is older than what its coordinator already knows.

OctoPrint pushes an event ~13 ms after the action, from its event thread; its `current` frames come from
another thread at most twice a second. A frame built before an event can arrive after it, and so can a
frame built before a REST answer (tests/test_operations.py saw "Printing" arrive after the pause event and
after a REST answer saying "Pausing"). Frames arrive in the order they were built: once one agrees with
the news, the later ones are newer. A REST answer is as old as its question: one asked before an event is
not newer than the event.
"""

from __future__ import annotations

import math
import time

from controller.fleet.state import PrinterState, PrinterStatus

# How long news rules over a frame (or an answer asked before it) that contradicts it; after this the
# host's word rules again (an event may have been missed).
EVENT_HOLD_S = 2.5
RUNNING = (PrinterState.PRINTING, PrinterState.PAUSED)


def _as_host_says(state: PrinterState) -> PrinterState:
    """The state as a host's frame would say it: the bed is the farm's business, not the host's."""
    return PrinterState.IDLE if state is PrinterState.AWAITING_CLEAR else state


class Freshness:
    """One printer's record of its latest news: events, REST answers and the print that last ended."""

    def __init__(self) -> None:
        # (the state the news replaced, when), until a frame agrees
        self._hold: tuple[PrinterState, float] | None = None
        self._event_at = -math.inf  # when an event last changed the state
        self._unsettled_at: float | None = None  # an event changed the state; the host has not agreed yet
        self._ended: tuple[str | None, float] | None = None  # (file, when) of the print that last ended

    def changed_by_event(self, before: PrinterState) -> None:
        """An event replaced `before`: frames showing it are held, and the printer is unsettled."""
        now = time.monotonic()
        self._hold = (_as_host_says(before), now)
        self._event_at = self._unsettled_at = now

    def changed_by_answer(self, before: PrinterState) -> None:
        """A REST answer replaced `before`: frames built before the answer may still show it."""
        self._hold = (_as_host_says(before), time.monotonic())

    def answered(self) -> None:
        """A REST answer was taken: the host has spoken (frames already on the way stay held)."""
        self._unsettled_at = None

    @property
    def unsettled(self) -> bool:
        """An event changed the state and neither a frame nor an answer has agreed since."""
        return self._unsettled_at is not None

    @property
    def settled(self) -> bool:
        """False for a moment after an event changed the state, until the host's own word agrees."""
        return self._unsettled_at is None or time.monotonic() - self._unsettled_at > EVENT_HOLD_S

    def stale_frame(self, state: PrinterState) -> bool:
        """A pushed frame that still shows the state recent news replaced was built before the news."""
        if self._hold is None:
            return False
        before, at = self._hold
        if time.monotonic() - at > EVENT_HOLD_S or state is not before:
            self._hold = None  # the frames have caught up (or moved on)
            self._unsettled_at = None
            return False
        return True

    def stale_answer(self, asked_at: float) -> bool:
        """A REST answer to a question asked before the latest event's change is not newer than it."""
        return asked_at < self._event_at and time.monotonic() - self._event_at <= EVENT_HOLD_S

    def print_started(self) -> None:
        """A PrintStarted event: a frame showing that file running is news again."""
        self._ended = None

    def note_end(self, old: PrinterStatus, new: PrinterStatus) -> None:
        if old.state in RUNNING and new.state not in (*RUNNING, PrinterState.OFFLINE):
            self._ended = (old.file, time.monotonic())  # (offline mid-print ends nothing)

    def ended_before(self, state: PrinterState, file: str | None) -> bool:
        """A frame or answer showing the print that just ended as running, with no PrintStarted since, was
        made before the end: it must not mark a bed just cleared used again (bench/dispatch.py saw it)."""
        if self._ended is None or state not in RUNNING:
            return False
        if time.monotonic() - self._ended[1] > EVENT_HOLD_S or file != self._ended[0]:
            self._ended = None  # a later print, or the host has long moved on
            return False
        return True
