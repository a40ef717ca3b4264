"""The demo farm's meters: a local mosquitto, a simulated metering plug per printer (Tasmota, Shelly,
Zigbee2MQTT in turn) and a spool scale on the first, so a demo print shows measured kWh, grams, cost
and CO2. Without mosquitto installed the demo runs without them and says so."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devices.localproc import LocalProcess, free_port
from devices.octoprint import OctoPrintClient
from devices.sim.follow import Broker
from devices.sim.meter_plug import SimMeterPlug
from devices.sim.plug_wire import PlugVendor, telemetry_topic
from devices.sim.scale import SimScale

_VENDORS = (PlugVendor.tasmota, PlugVendor.shelly, PlugVendor.zigbee2mqtt)
# Real plugs report every 10 s or so; the demo's reports come often enough to watch.
PUBLISH_S = 2.0
# The example tariffs of deploy/farmctl.example.toml, so a demo print shows a cost.
COSTS = """
[costs]
energy_per_kwh = 0.30
machine_hour = 0.50
co2_g_per_kwh = 380.0
[costs.materials.PLA]
per_kg = 25.0
[costs.materials.PETG]
per_kg = 28.0
"""


@dataclass(frozen=True, slots=True)
class DemoPrinter:
    name: str
    url: str
    api_key: str


def start_broker(workdir: Path) -> tuple[LocalProcess, int] | None:
    """A mosquitto on a free loopback port, or None when mosquitto is not installed."""
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        return None
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = LocalProcess("mosquitto", [exe, "-c", str(conf)], workdir)
    broker.start()
    broker.wait_ready(lambda: _accepts(port), timeout=15)
    return broker, port


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _plug_device(printer: str) -> str:
    return f"plug-{printer}"


def _scale_name(printer: str) -> str:
    return "spool_" + printer.replace("-", "_")


def config_lines(printers: Sequence[str], port: int) -> tuple[str, dict[str, list[str]]]:
    """The [mqtt], [[sensors]] and [costs] sections, and each printer's extra lines (plug, scale)."""
    lines = ["", "[mqtt]", 'host = "127.0.0.1"', f"port = {port}"]
    extra: dict[str, list[str]] = {}
    for i, printer in enumerate(printers):
        vendor = _VENDORS[i % len(_VENDORS)]
        device = _plug_device(printer)
        lines += ["", "[[sensors]]", f'id = "{device}"', f'topic = "{telemetry_topic(vendor, device)}"']
        lines += [f'profile = "{vendor}"', f'printer = "{printer}"']
        extra[printer] = [f'plug = "{device}"']
    if printers:
        first = printers[0]
        scale = f"scales/sensor/{_scale_name(first)}/state"
        lines += ["", "[[sensors]]", f'id = "spool-{first}"', f'topic = "{scale}"', 'profile = "esphome"']
        lines += ['kind = "weight"', f'printer = "{first}"']
        extra[first].append(f'scale = "spool-{first}"')
    return "\n".join(lines) + "\n" + COSTS, extra


async def run_meters(printers: Sequence[DemoPrinter], port: int, stop: asyncio.Event) -> None:
    """Run the simulated plugs and scale until `stop` is set."""
    broker = Broker("127.0.0.1", port)
    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tg:
        for i, printer in enumerate(printers):
            client = await stack.enter_async_context(OctoPrintClient(printer.url, printer.api_key))
            vendor = _VENDORS[i % len(_VENDORS)]
            plug = SimMeterPlug(vendor, _plug_device(printer.name), broker, client, publish_s=PUBLISH_S)
            tg.create_task(plug.run(stop))
            if i == 0:
                scale = SimScale(_scale_name(printer.name), broker, client, publish_s=PUBLISH_S, decimals=1)
                tg.create_task(scale.run(stop))
