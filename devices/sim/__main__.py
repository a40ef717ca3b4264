"""Run one simulated plug or scale from the command line (the demo farm, manual tests).

    python -m devices.sim plug  --vendor tasmota --device printer-1 --mqtt 127.0.0.1:1883 \\
        --octoprint http://127.0.0.1:5000
    python -m devices.sim scale --name spool_1 --mqtt 127.0.0.1:1883 --octoprint http://127.0.0.1:5000

Secrets never go on the command line (other users see it in `ps`): the OctoPrint API key comes from
$OCTOPRINT_API_KEY or --api-key-file, the MQTT password from $MQTT_PASSWORD or --mqtt-password-file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from devices.octoprint import OctoPrintClient
from devices.sim.follow import Broker
from devices.sim.meter_plug import SimMeterPlug
from devices.sim.plug_wire import PlugVendor
from devices.sim.scale import SimScale


def _secret(env: str, path: Path | None) -> str | None:
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return os.environ.get(env) or None


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m devices.sim`."""
    top = argparse.ArgumentParser(prog="python -m devices.sim", description=__doc__.split("\n")[0])
    kinds = top.add_subparsers(dest="kind", required=True)
    for kind in ("plug", "scale"):
        sub = kinds.add_parser(kind)
        sub.add_argument("--mqtt", type=_host_port, required=True, help="broker HOST:PORT")
        sub.add_argument("--mqtt-user")
        sub.add_argument("--mqtt-password-file", type=Path)
        sub.add_argument("--octoprint", required=kind == "scale", help="the followed printer's URL")
        sub.add_argument("--api-key-file", type=Path)
        sub.add_argument("--publish", type=float, default=10.0, help="seconds between messages")
        sub.add_argument("--log", type=Path, help="append the ground truth to this JSONL file")
    plug = kinds.choices["plug"]
    plug.add_argument("--vendor", choices=list(PlugVendor), required=True)
    plug.add_argument("--device", required=True, help="Tasmota topic, Shelly id or Z2M friendly name")
    plug.add_argument("--off", action="store_true", help="start with the relay off")
    plug.add_argument("--kwh-decimals", type=int)
    scale = kinds.choices["scale"]
    scale.add_argument("--name", required=True, help="ESPHome sensor object id")
    scale.add_argument("--prefix", default="scales")
    scale.add_argument("--material", default="PLA")
    scale.add_argument("--filament", type=float, default=1000.0, help="grams on the spool")
    scale.add_argument("--spool", type=float, default=220.0, help="empty spool grams")
    return top


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    host, port = args.mqtt
    broker = Broker(host, port, args.mqtt_user, _secret("MQTT_PASSWORD", args.mqtt_password_file))
    async with contextlib.AsyncExitStack() as stack:
        printer = None
        if args.octoprint:
            key = _secret("OCTOPRINT_API_KEY", args.api_key_file) or ""
            printer = await stack.enter_async_context(OctoPrintClient(args.octoprint, key, timeout=5))
        device: SimMeterPlug | SimScale
        if args.kind == "plug":
            device = SimMeterPlug(args.vendor, args.device, broker, printer, relay_on=not args.off,
                                  publish_s=args.publish, kwh_decimals=args.kwh_decimals,
                                  trace_log=args.log)  # fmt: skip
        else:
            assert printer is not None  # --octoprint is required for a scale
            device = SimScale(args.name, broker, printer, prefix=args.prefix, material=args.material,
                              filament_g=args.filament, spool_empty_g=args.spool, publish_s=args.publish,
                              trace_log=args.log)  # fmt: skip
        await device.run(stop)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        asyncio.run(_main(args))
    except (ValueError, OSError) as exc:  # bad options, unreadable key file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
