"""The event feed's contract: every subscriber its own bounded queue, and an overflow policy that is
counted and logged, never silent."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from controller.core.events import EventFeed, JobChanged, Overflow, PrinterChanged, SensorReadings, unit_of
from controller.fleet.state import PrinterStatus
from controller.jobs import JobState


def job(n: int) -> JobChanged:
    return JobChanged(n, n, JobState.QUEUED, None, datetime(2026, 1, 1, tzinfo=UTC))


async def test_drop_oldest_keeps_the_newest_and_counts_and_logs_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = EventFeed()
    slow = feed.subscribe("web", JobChanged, maxsize=3)
    fast = feed.subscribe("points", JobChanged, maxsize=100)
    with caplog.at_level(logging.WARNING, logger="controller.core.events"):
        for n in range(1, 9):
            feed.publish_nowait(job(n))
    assert [e.event_id for e in slow.take()] == [6, 7, 8]
    assert slow.dropped == 5
    assert [e.event_id for e in fast.take()] == list(range(1, 9))  # one slow subscriber slows no other
    assert fast.dropped == 0
    # Logged once (at most once a minute), with the count so far: no line per dropped event.
    assert [r.getMessage() for r in caplog.records] == [
        "event feed: subscriber web fell behind, 1 JobChanged events dropped (1 in all)"
    ]


async def test_wait_holds_the_publisher_until_the_subscriber_takes() -> None:
    feed = EventFeed()
    sink = feed.subscribe("sink", JobChanged, maxsize=2, overflow=Overflow.WAIT)
    await feed.publish(job(1))
    await feed.publish(job(2))
    third = asyncio.create_task(feed.publish(job(3)))
    await asyncio.sleep(0.05)
    assert not third.done()  # back-pressure, not loss
    assert [e.event_id for e in sink.take()] == [1, 2]
    await asyncio.wait_for(third, 1)
    assert [e.event_id for e in sink.take()] == [3]
    assert sink.dropped == 0
    # Published from synchronous code into a full WAIT queue: counted, never silently lost.
    feed.publish_nowait(job(4))
    feed.publish_nowait(job(5))
    feed.publish_nowait(job(6))
    assert sink.dropped == 1
    assert len(sink) == 2


async def test_kinds_go_only_to_their_subscribers_and_a_mixed_subscription_keeps_order() -> None:
    feed = EventFeed()
    both = feed.subscribe_all("dispatcher", (PrinterChanged, JobChanged))
    jobs = feed.subscribe("jobs", JobChanged)
    readings = feed.subscribe("sink", SensorReadings)
    printer = PrinterChanged(PrinterStatus(name="p1"))
    feed.publish_nowait(job(1))
    feed.publish_nowait(printer)
    feed.publish_nowait(job(2))
    assert both.take() == [job(1), printer, job(2)]
    assert jobs.take() == [job(1), job(2)]
    assert readings.take() == []
    assert {s.name for s in feed.subscriptions} == {"dispatcher", "jobs", "sink"}


async def test_get_waits_for_an_event_and_wake_ends_a_wait_without_one() -> None:
    feed = EventFeed()
    sub = feed.subscribe("x", JobChanged)
    getter = asyncio.create_task(sub.get())
    await asyncio.sleep(0.01)
    feed.publish_nowait(job(7))
    assert (await asyncio.wait_for(getter, 1)).event_id == 7
    sub.wake()
    await asyncio.wait_for(sub.wait(), 1)  # returns with nothing waiting
    assert sub.take() == []
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sub.wait(), 0.05)  # the wake was used up


def test_units_from_field_names() -> None:
    assert [unit_of(f) for f in ("power_w", "energy_kwh", "weight_g", "humidity_pct", "x")] == [
        "W",
        "kWh",
        "g",
        "%",
        "",
    ]


async def test_a_subscription_for_some_sensors_is_not_woken_by_the_others() -> None:
    feed = EventFeed()
    sink = feed.subscribe("sink", SensorReadings, overflow=Overflow.WAIT)
    plugs = feed.subscribe_all("accounting", (SensorReadings, JobChanged), sensors=frozenset({"plug-1"}))
    for sensor in ("plug-1", "hall-temp", "scale-9", "plug-1"):
        await feed.publish(SensorReadings(sensor, (), 1))
    feed.publish_nowait(job(1))
    assert [e.sensor for e in sink.take()] == ["plug-1", "hall-temp", "scale-9", "plug-1"]
    taken = plugs.take()
    assert [e.sensor for e in taken if isinstance(e, SensorReadings)] == ["plug-1", "plug-1"]
    assert taken[-1] == job(1)
    assert plugs.dropped == 0  # passed over, not dropped
