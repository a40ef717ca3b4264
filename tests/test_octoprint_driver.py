"""The OctoPrint driver against real OctoPrint 1.11 virtual printers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices.errors import DeviceAuthError, DeviceBusy, DeviceUnavailable
from devices.octoprint import EventKind, OctoPrintClient, PrinterEvent, PushStream, Snapshot
from tests.conftest import OctoPrintFactory
from tests.peers.base import free_port


def gcode(path: Path, moves: int = 200) -> Path:
    """A small valid print: heat, home, a few hundred moves."""
    lines = ["M104 S200", "M140 S60", "M190 S60", "M109 S200", "G28", "G90", "M83"]
    for i in range(moves):
        lines.append(f"G1 X{10 + i % 50} Y{10 + (i // 50) % 50} E0.1 F6000")
    lines += ["M104 S0", "M140 S0"]
    path.write_text("\n".join(lines) + "\n")
    return path


async def wait_state(client: OctoPrintClient, want: str, timeout: float = 30.0) -> Snapshot:
    async with asyncio.timeout(timeout):
        while True:
            snap = await client.snapshot()
            if snap.state_text.startswith(want):
                return snap
            await asyncio.sleep(0.2)


async def test_version_status_and_bad_key(octoprint: OctoPrintFactory) -> None:
    (peer,) = octoprint(1)
    async with OctoPrintClient(peer.url, peer.api_key, timeout=5) as client:
        version = await client.version()
        assert version.server.startswith("1.11")
        snap = await client.snapshot()
        assert snap.state_text == "Operational"
        assert snap.flags.operational
        assert snap.flags.ready
        assert not snap.flags.printing
        async with asyncio.timeout(15):  # the first temperature report follows connect by ~2 s
            while not {"tool0", "bed"} <= snap.temperatures.keys():
                await asyncio.sleep(0.3)
                snap = await client.snapshot()
        assert snap.temperatures["tool0"].actual is not None
        assert (await client.connection()).state == "Operational"
    async with OctoPrintClient(peer.url, "wrong-key", timeout=5) as bad:
        with pytest.raises(DeviceAuthError) as info:
            await bad.version()
        assert "wrong-key" not in str(info.value)


async def test_unreachable_is_unavailable_quickly() -> None:
    async with OctoPrintClient(f"http://127.0.0.1:{free_port()}", "k", timeout=2) as client:
        with pytest.raises(DeviceUnavailable, match="cannot connect"):
            await client.snapshot()


async def test_upload_prints_and_busy_upload_is_not_started(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    async with OctoPrintClient(peer.url, peer.api_key, timeout=10) as client:
        first = await client.upload(gcode(tmp_path / "a.gcode", 600), "job-1.gcode")
        assert first.started
        assert first.selected
        assert first.name == "job-1.gcode"
        await wait_state(client, "Printing")
        second = await client.upload(gcode(tmp_path / "b.gcode"), "job-2.gcode")
        assert not second.started  # OctoPrint answered 201 but the printer was busy
        with pytest.raises(DeviceBusy):
            await client.start()
        await client.pause()
        await wait_state(client, "Paused")
        await client.resume()
        await wait_state(client, "Printing")
        await client.cancel()
        snap = await wait_state(client, "Operational")
        assert not snap.flags.printing
        names = {f.name for f in await client.files()}
        assert {"job-1.gcode", "job-2.gcode"} <= names
        with pytest.raises(DeviceBusy):
            await client.cancel()


async def test_push_stream_reports_print_lifecycle(octoprint: OctoPrintFactory, tmp_path: Path) -> None:
    (peer,) = octoprint(1)
    events: list[PrinterEvent] = []
    states: list[str] = []
    async with (
        OctoPrintClient(peer.url, peer.api_key, timeout=10) as client,
        PushStream(client, idle_timeout=20) as stream,
    ):
        await client.upload(gcode(tmp_path / "p.gcode", 1500), "push-job.gcode")
        async with asyncio.timeout(60):
            async for item in stream:
                if isinstance(item, PrinterEvent):
                    events.append(item)
                    if item.kind is EventKind.PRINT_DONE:
                        break
                else:
                    states.append(item.state_text)
    kinds = [e.kind for e in events]
    assert EventKind.PRINT_STARTED in kinds
    done = events[-1]
    assert done.file_name == "push-job.gcode"
    assert done.elapsed_s is not None
    assert "Printing" in states


async def test_firmware_error_and_disconnect_then_reconnect(octoprint: OctoPrintFactory) -> None:
    (peer,) = octoprint(1)
    async with OctoPrintClient(peer.url, peer.api_key, timeout=10) as client:
        await client.send_commands(["!!DEBUG:trigger_fatal_error_marlin"])
        snap = await wait_state(client, "Offline after error")
        assert snap.flags.error
        assert snap.error
        await client.connect()
        await wait_state(client, "Operational")
        await client.send_commands(["!!DEBUG:action_disconnect"])
        snap = await wait_state(client, "Offline")
        assert snap.flags.closed
        assert not snap.flags.error
        await client.connect()
        await wait_state(client, "Operational")
