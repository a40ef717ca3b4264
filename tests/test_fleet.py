"""Fleet monitor against real OctoPrint virtual printers plus hosts that refuse connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest

from controller.config import Config
from controller.fleet.coordinator import Fleet
from controller.fleet.drivers import fleet_session
from controller.fleet.state import PrinterState
from devices.errors import DeviceUnavailable
from devices.octoprint import OctoPrintClient
from tests.conftest import OctoPrintFactory
from tests.helpers import PrinterSpec, closed_port_printers, config_for, eventually
from tests.test_octoprint_driver import gcode


@asynccontextmanager
async def running_fleet(config: Config) -> AsyncIterator[Fleet]:
    stop = asyncio.Event()
    async with fleet_session() as session, asyncio.TaskGroup() as tg:
        fleet = Fleet(config.printers, config.controller, session)
        for coordinator in fleet.coordinators.values():
            tg.create_task(coordinator.run(stop))
        try:
            yield fleet
        finally:
            stop.set()


def state(fleet: Fleet, name: str) -> PrinterState:
    coordinator = fleet.get(name)
    assert coordinator is not None
    return coordinator.status.state


def seen(fleet: Fleet, name: str) -> datetime:
    coordinator = fleet.get(name)
    assert coordinator is not None
    assert coordinator.status.last_seen is not None
    return coordinator.status.last_seen


async def until_link_closed(client: OctoPrintClient) -> None:
    """Until OctoPrint's own REST view says the serial link is down."""
    for _ in range(100):
        if (await client.connection()).state != "Operational":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("OctoPrint kept the serial link open")


async def eventually_idle(fleet: Fleet, client: OctoPrintClient, what: str) -> None:
    """Wait for the fleet to show b idle; a timeout says what OctoPrint itself reported."""
    try:
        await eventually(lambda: state(fleet, "b") is PrinterState.IDLE, 15, what)
    except AssertionError as exc:
        host = (await client.connection()).state
        raise AssertionError(f"{exc}; fleet shows {state(fleet, 'b')}, OctoPrint says {host!r}") from None


async def test_fleet_tracks_prints_faults_and_dead_hosts(
    octoprint: OctoPrintFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="controller.fleet.coordinator")
    a, b, c = octoprint(3)
    dead = closed_port_printers(20)
    specs = [
        PrinterSpec("a", a.url, a.api_key),
        PrinterSpec("b", b.url, b.api_key),
        PrinterSpec("c", c.url, c.api_key),
        *dead,
    ]
    config = config_for(tmp_path, specs)
    async with running_fleet(config) as fleet, OctoPrintClient(a.url, a.api_key) as client_a:
        # 20 dead hosts do not stop the real ones from coming up promptly.
        await eventually(lambda: all(state(fleet, n) is PrinterState.IDLE for n in "abc"), 15, "abc idle")
        assert all(state(fleet, p.name) is PrinterState.OFFLINE for p in dead)

        # idle → printing → awaiting_clear after an upload-and-print, followed by push: any print,
        # even one started on OctoPrint itself, leaves a part on the bed.
        await client_a.upload(gcode(tmp_path / "a.gcode", 1500), "fleet-a.gcode")
        a_status = fleet.get("a")
        assert a_status is not None
        # OctoPrint's state change and its PrintStarted (which names the file) are two events, a few
        # milliseconds apart: the printer shows printing with its file once both are in.
        await eventually(
            lambda: state(fleet, "a") is PrinterState.PRINTING and a_status.status.file == "fleet-a.gcode",
            15,
            "a printing fleet-a.gcode",
        )
        await eventually(lambda: state(fleet, "a") is PrinterState.AWAITING_CLEAR, 60, "a awaiting clear")
        assert a_status.clear()
        assert state(fleet, "a") is PrinterState.IDLE
        assert not a_status.clear()  # already clear

        # A firmware error on b is seen as error; after a reconnect b is idle again.
        async with OctoPrintClient(b.url, b.api_key) as client_b:
            await client_b.send_commands(["!!DEBUG:trigger_fatal_error_marlin"])
            await eventually(lambda: state(fleet, "b") is PrinterState.ERROR, 15, "b error")
            b_coord = fleet.get("b")
            assert b_coord is not None
            assert b_coord.status.error
            # As an operator would: reconnect once OctoPrint has closed the link after the error
            # (a connect racing OctoPrint's own close can leave the host closed; that is not ours).
            await until_link_closed(client_b)
            await client_b.connect()
            await eventually_idle(fleet, client_b, "b idle after error")
            # A serial disconnect is offline, not error; reconnect brings it back.
            await client_b.send_commands(["!!DEBUG:action_disconnect"])
            await eventually(lambda: state(fleet, "b") is PrinterState.OFFLINE, 15, "b offline")
            await until_link_closed(client_b)
            await client_b.connect()
            await eventually_idle(fleet, client_b, "b idle after reconnect")

        # Killing c's OctoPrint makes c offline while a and b keep updating.
        c.kill()
        await eventually(lambda: state(fleet, "c") is PrinterState.OFFLINE, 15, "c offline")
        killed_at = max(seen(fleet, "a"), seen(fleet, "b"))
        await eventually(
            lambda: seen(fleet, "a") > killed_at and seen(fleet, "b") > killed_at, 20, "a, b updating"
        )
        assert state(fleet, "a") is PrinterState.IDLE
        c.restart()
        await eventually(lambda: state(fleet, "c") is PrinterState.IDLE, 30, "c recovered")

    messages = [r.getMessage() for r in caplog.records]
    assert sum("printer=c offline" in m for m in messages) == 1
    assert any(m.startswith("printer=c recovered after") for m in messages)
    # Each dead host is logged as offline once, however often it was retried.
    assert sum("printer=dead-0 offline" in m for m in messages) == 1


async def test_printer_without_push_is_polled_not_hammered(
    octoprint: OctoPrintFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A host whose push socket always fails (replaced by a failing stand-in; REST stays the real
    OctoPrint) is kept current by polling at poll_interval, not by a tight retry loop."""
    (peer,) = octoprint(1)
    config = config_for(tmp_path, [PrinterSpec("a", peer.url, peer.api_key)])
    caplog.set_level(logging.DEBUG, logger="controller.fleet.coordinator")
    async with running_fleet(config) as fleet:
        coordinator = fleet.get("a")
        assert coordinator is not None
        original = coordinator._follow_push
        pushes = 0

        async def broken_push() -> None:
            nonlocal pushes
            pushes += 1
            raise DeviceUnavailable("push refused")

        coordinator._follow_push = broken_push  # type: ignore[method-assign]
        await eventually(lambda: state(fleet, "a") is PrinterState.IDLE, 15, "a idle by polling")
        pushes = 0
        await asyncio.sleep(3.0)
        # poll_interval is 1 s in tests: about one push attempt per 2 s cycle, not hundreds.
        assert 1 <= pushes <= 4
        assert state(fleet, "a") is PrinterState.IDLE
        coordinator._follow_push = original  # type: ignore[method-assign]
