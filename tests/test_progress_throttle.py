"""The progress throttle's decisions on a fake clock: at most one publish per window per printer, and
the last change inside a window still goes out at its end; the publisher on a real event feed."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import pytest

from controller.core.events import EventFeed, JobChanged, PrinterChanged, PrinterProgress
from controller.fleet.progress import ProgressPublisher, ProgressThrottle, figures
from controller.fleet.state import PrinterState, PrinterStatus
from devices.printer import Temperature


class Clocked:
    """A throttle driven the way the coordinator drives it, on a clock the test moves; records when
    each publish went out."""

    def __init__(self, min_s: float = 1.0) -> None:
        self.throttle = ProgressThrottle(min_s)
        self.now = 0.0
        self.timer: float | None = None  # when the pending timer fires
        self.sent: list[float] = []

    def change(self, at: float) -> None:
        self.advance(at)
        delay = self.throttle.offer(at)
        if delay == 0.0:
            self.sent.append(at)
        elif delay is not None:
            assert self.timer is None, "a second timer for the same window"
            self.timer = at + delay

    def advance(self, to: float) -> None:
        if self.timer is not None and self.timer <= to:
            fired, self.timer = self.timer, None
            if self.throttle.due(fired):
                self.sent.append(fired)
        self.now = to


def test_a_first_change_goes_out_at_once() -> None:
    c = Clocked()
    c.change(5.0)
    assert c.sent == [5.0]


def test_changes_every_200_ms_go_out_once_a_second_and_the_last_at_the_window_end() -> None:
    c = Clocked()
    for i in range(26):  # 0.0 .. 5.0 s
        c.change(i * 0.2)
    c.advance(10.0)
    # The change at 5.0 s comes just after the publish at 5.0 s: it waits for the next window's end.
    assert c.sent == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    gaps = [b - a for a, b in itertools.pairwise(c.sent)]
    assert min(gaps) >= 1.0 - 1e-9


def test_a_lone_change_inside_the_window_is_not_lost() -> None:
    c = Clocked()
    c.change(0.0)
    c.change(0.3)  # the final figure of a print, say: nothing follows it
    assert c.sent == [0.0]
    c.advance(0.99)
    assert c.sent == [0.0]
    c.advance(1.0)
    assert c.sent == [0.0, 1.0]
    c.advance(60.0)
    assert c.sent == [0.0, 1.0]  # nothing more without a change


def test_a_slow_printer_publishes_each_change_at_once() -> None:
    c = Clocked()
    for t in (0.0, 1.5, 4.0, 4.0 + 1.0):
        c.change(t)
    assert c.sent == [0.0, 1.5, 4.0, 5.0]


def test_a_full_printer_change_covers_what_was_held() -> None:
    c = Clocked()
    c.change(0.0)
    c.change(0.5)  # held until 1.0
    c.throttle.covered(0.7)  # a state change went out with the newest figures
    c.advance(1.0)
    assert c.sent == [0.0]
    c.change(1.2)  # within a window of the state change: held until 1.7
    c.advance(2.0)
    assert c.sent == [0.0, pytest.approx(1.7)]


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        ProgressThrottle(-1.0)


def test_figures_ignore_jitter_below_a_tenth_of_a_degree_and_the_time_seen() -> None:
    def status(actual: float, progress: float = 10.0, target: float = 200.0) -> PrinterStatus:
        temps = {"tool0": Temperature(actual, target), "bed": Temperature(None, None)}
        return PrinterStatus("p1", PrinterState.PRINTING, progress=progress, temperatures=temps)

    assert figures(status(199.96)) == figures(status(200.04))
    assert figures(status(199.9)) != figures(status(200.0))
    assert figures(status(200.0, target=0.0)) != figures(status(200.0))
    assert figures(status(200.0, progress=10.5)) != figures(status(200.0))


async def test_the_publisher_sends_progress_only_to_its_subscribers_and_the_held_figure_last() -> None:
    feed = EventFeed()
    dispatcher = feed.subscribe_all("dispatcher", (PrinterChanged, JobChanged))
    live = feed.subscribe_all("live-updates", (PrinterChanged, PrinterProgress, JobChanged))
    status = PrinterStatus("p1", PrinterState.PRINTING, progress=1.0)
    publisher = ProgressPublisher(feed, lambda: status, min_s=0.2)
    publisher.changed()  # at once
    for progress in (2.0, 3.0, 4.0):  # inside the window: one publish at its end, with the last
        status = replace(status, progress=progress)
        publisher.changed()
    assert [e.status.progress for e in live.take() if isinstance(e, PrinterProgress)] == [1.0]
    await asyncio.sleep(0.5)
    assert [e.status.progress for e in live.take() if isinstance(e, PrinterProgress)] == [4.0]
    assert dispatcher.take() == []

    for progress in (5.0, 6.0):  # the window has passed: 5.0 at once, 6.0 held
        status = replace(status, progress=progress)
        publisher.changed()
    publisher.close()  # the printer stops being watched: what was held is dropped
    await asyncio.sleep(0.5)
    assert [e.status.progress for e in live.take() if isinstance(e, PrinterProgress)] == [5.0]
