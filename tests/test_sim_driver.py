"""The simulated printer host behaves as the controller's rules expect a host to (devices/sim)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devices.errors import DeviceBadRequest, DeviceBusy, DeviceUnavailable, DeviceUnreachable
from devices.printer import EventKind, HostSnapshot, HostState, PrinterDriver, PrinterEvent, PushItem
from devices.sim import SimPrinter


@pytest.fixture
def part(tmp_path: Path) -> Path:
    path = tmp_path / "part.gcode"
    path.write_text("G28\nG1 X10 Y10\n")
    return path


async def take(items: AsyncIterator[PushItem], count: int) -> list[PushItem]:
    """The next `count` pushed items (a test fails rather than hangs when fewer come)."""
    async with asyncio.timeout(2):
        return [await anext(items) for _ in range(count)]


def kinds(items: list[PushItem]) -> list[EventKind | HostState]:
    """Each item as its event kind or, for a frame, its state."""
    return [item.kind if isinstance(item, PrinterEvent) else item.state for item in items]


async def test_upload_starts_a_print_on_an_idle_host_only(part: Path) -> None:
    sim = SimPrinter("a")
    driver: PrinterDriver = sim  # the sim is a PrinterDriver (checked by mypy)
    async with driver.push(idle_timeout=5) as items:
        assert kinds(await take(items, 1)) == [HostState.IDLE]  # the current state comes first
        first = await driver.upload(part, "farmctl-1-part.gcode", select=True, start=True)
        assert first.started
        started = await take(items, 2)
        assert kinds(started) == [EventKind.PRINT_STARTED, HostState.PRINTING]
        frame = started[1]
        assert isinstance(frame, HostSnapshot)
        assert (frame.file_name, frame.progress) == ("farmctl-1-part.gcode", 0.0)

        # A busy host stores the file and does not start it, as OctoPrint does (201, effectivePrint false).
        second = await driver.upload(part, "farmctl-2-part.gcode", select=True, start=True)
        assert not second.started
        assert sim.uploads == ["farmctl-1-part.gcode", "farmctl-2-part.gcode"]
        assert (await driver.snapshot()).file_name == "farmctl-1-part.gcode"
        # Overwriting the file being printed is refused (OctoPrint: 409).
        with pytest.raises(DeviceBusy):
            await driver.upload(part, "farmctl-1-part.gcode")
    with pytest.raises(DeviceBadRequest):
        await driver.upload(part.with_name("missing.gcode"), "x.gcode")


async def test_ends_are_events_then_frames_and_the_history_counts_them(part: Path) -> None:
    sim = SimPrinter("a")
    async with sim.push(idle_timeout=5) as items:
        await take(items, 1)
        sim.start_print("ok.gcode")
        sim.advance(50.0)
        sim.finish()
        assert kinds(await take(items, 5)) == [
            EventKind.PRINT_STARTED,
            HostState.PRINTING,
            HostState.PRINTING,  # the advance
            EventKind.PRINT_DONE,
            HostState.IDLE,
        ]
        sim.start_print("bad.gcode")
        sim.fail("Heater decoupled")
        got = await take(items, 5)
        assert kinds(got)[2:] == [EventKind.ERROR, EventKind.PRINT_FAILED, HostState.ERROR]
        failed = got[3]
        assert isinstance(failed, PrinterEvent)
        assert (failed.file_name, failed.reason, failed.error) == ("bad.gcode", "error", "Heater decoupled")
        snap = await sim.snapshot()
        assert (snap.state, snap.error) == (HostState.ERROR, "Heater decoupled")
        with pytest.raises(RuntimeError):  # a host in error starts nothing
            sim.start_print("next.gcode")
        sim.clear_error()
        assert kinds(await take(items, 1)) == [HostState.IDLE]
    history = {f.name: (f.successes, f.failures) for f in await sim.files()}
    assert history == {"ok.gcode": (1, 0), "bad.gcode": (0, 1)}


async def test_cancel_pause_and_resume_as_the_controller_asks() -> None:
    sim = SimPrinter("a")
    with pytest.raises(DeviceBusy):  # nothing is printing: OctoPrint answers 409
        await sim.cancel()
    sim.start_print("p.gcode")
    await sim.pause()
    assert (await sim.snapshot()).state is HostState.PAUSED
    with pytest.raises(DeviceBusy):
        await sim.pause()
    await sim.resume()
    assert (await sim.snapshot()).state is HostState.PRINTING
    async with sim.push(idle_timeout=5) as items:
        await take(items, 1)
        await sim.cancel()
        assert kinds(await take(items, 2)) == [EventKind.PRINT_CANCELLED, HostState.IDLE]
    assert sim.commands == ["cancel", "pause", "pause", "resume", "cancel"]
    assert [(f.successes, f.failures) for f in await sim.files()] == [(0, 1)]


async def test_a_stale_frame_follows_the_event_until_the_host_catches_up() -> None:
    sim = SimPrinter("a", stale_frames=True)
    sim.start_print("p.gcode")
    async with sim.push(idle_timeout=5) as items:
        await take(items, 1)
        sim.finish()
        done, stale = await take(items, 2)
        assert isinstance(done, PrinterEvent)
        assert done.kind is EventKind.PRINT_DONE
        # Built before the event: it still shows the print running.
        assert isinstance(stale, HostSnapshot)
        assert (stale.state, stale.file_name) == (HostState.PRINTING, "p.gcode")
        assert (await sim.snapshot()).state is HostState.IDLE  # a poll is always fresh
        sim.send_frame()
        assert kinds(await take(items, 1)) == [HostState.IDLE]
        sim.start_print("q.gcode")
        sim.cancel_print(stale=False)  # per call, too
        assert kinds(await take(items, 4)) == [
            EventKind.PRINT_STARTED,
            HostState.IDLE,  # stale: before the start
            EventKind.PRINT_CANCELLED,
            HostState.IDLE,
        ]


async def test_offline_host_drops_its_stream_and_answers_nothing(part: Path) -> None:
    sim = SimPrinter("a")
    sim.start_print("p.gcode")
    async with sim.push(idle_timeout=5) as items:
        await take(items, 1)
        sim.go_offline()
        with pytest.raises(DeviceUnavailable):
            await take(items, 1)
    for call in (sim.snapshot(), sim.files(), sim.cancel(), sim.upload(part, "x.gcode")):
        with pytest.raises(DeviceUnreachable):
            await call
    with pytest.raises(DeviceUnreachable):
        async with sim.push(idle_timeout=5):
            pass
    sim.come_back()
    snap = await sim.snapshot()
    assert (snap.state, snap.file_name) == (HostState.PRINTING, "p.gcode")  # as it was
    assert sim.uploads == []


async def test_refused_uploads_store_nothing(part: Path) -> None:
    sim = SimPrinter("a")
    sim.refuse_uploads()
    with pytest.raises(DeviceBadRequest):
        await sim.upload(part, "x.gcode")
    sim.refuse_uploads(DeviceUnavailable("a: 503"))
    with pytest.raises(DeviceUnavailable):
        await sim.upload(part, "x.gcode")
    assert (sim.uploads, await sim.files()) == ([], [])
    sim.accept_uploads()
    assert (await sim.upload(part, "x.gcode")).started


async def test_a_silent_stream_ends_and_close_drops_every_stream() -> None:
    sim = SimPrinter("a")
    async with sim.push(idle_timeout=0.05) as items:
        await take(items, 1)
        with pytest.raises(DeviceUnavailable, match="silent"):
            await take(items, 1)
    async with sim.push(idle_timeout=5) as items:
        await take(items, 1)
        await sim.close()
        with pytest.raises(DeviceUnavailable, match="closed"):
            await take(items, 1)
    assert sim.closed


async def test_a_slow_cancel_goes_on_printing_until_the_host_is_done() -> None:
    sim = SimPrinter("a", slow_cancel=True)
    sim.start_print("p.gcode")
    await sim.cancel()
    snap = await sim.snapshot()
    assert (snap.state, snap.state_text, snap.file_name) == (HostState.PRINTING, "Cancelling", "p.gcode")
    await sim.cancel()  # a host that is cancelling takes another cancel (OctoPrint does)
    sim.cancel_print()
    assert (await sim.snapshot()).state is HostState.IDLE
    assert sim.commands == ["cancel", "cancel"]
