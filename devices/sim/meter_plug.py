"""A simulated metering smart plug on a real MQTT broker, powering a real OctoPrint printer (on paper).

`SimMeterPlug` polls the printer's state and temperatures, turns them into watts with the pure
`devices.sim.power` model, integrates the watts into an energy counter every `tick_s` (independent of
the publish period) and publishes the counter in its vendor's shape every `publish_s`. It obeys its
vendor's on/off commands. Its ground truth (`energy_kwh_between`, `counter_kwh_at`) is the same
integration, kept in a bounded `Trace` and optionally logged as JSONL.

QoS: telemetry is published at QoS 0 by default, as Tasmota (its MQTT library publishes QoS 0 only) and
Zigbee2MQTT (default `qos: 0`) do, so the controller is tested against samples that a broker drops for
an absent subscriber; pass `qos=1` for a plug whose every sample must arrive. Commands are subscribed
at QoS 1. No manual acks are needed (unlike devices/mqtt.py's aiomqtt#345 workaround for the ingest):
a command is acted on as soon as it arrives, and losing one in a reboot is what a real plug does too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from devices.errors import DeviceError
from devices.octoprint import OctoPrintClient
from devices.printer import HostSnapshot
from devices.sim import plug_wire as wire
from devices.sim.follow import OFFLINE, Broker, PrinterWatch, first_of, pause
from devices.sim.plug_wire import Action, Command, Meter, PlugVendor
from devices.sim.power import PowerModel, printer_power_w
from devices.sim.trace import Trace

log = logging.getLogger(__name__)

_KWH_PER_WS = 1.0 / 3.6e6


class SimMeterPlug:
    """A Tasmota, Shelly Gen2 or Zigbee2MQTT metering plug. `device` is the Tasmota topic, the Shelly
    id or the Zigbee2MQTT friendly name. Without a `printer` it draws the model's `standby_w` while
    its relay is on: a constant load (a filament dryer, an enclosure heater). With `cuts_printer`,
    switching the relay off disconnects OctoPrint from the printer, as losing mains would (OctoPrint
    then says Offline), and switching it on connects it again."""

    def __init__(
        self,
        vendor: PlugVendor | str,
        device: str,
        broker: Broker,
        printer: OctoPrintClient | None = None,
        *,
        model: PowerModel | None = None,
        relay_on: bool = True,
        publish_s: float = 1.0,
        poll_s: float = 0.5,
        tick_s: float = 0.1,
        qos: int = 0,
        kwh_decimals: int | None = None,
        cuts_printer: bool = False,
        trace_maxlen: int = 200_000,
        trace_log: Path | None = None,
    ) -> None:
        self.vendor = PlugVendor(vendor)
        if not device or any(c in device for c in "+#\0"):
            raise ValueError(f"plug device name {device!r} cannot be part of an MQTT topic")
        if min(publish_s, poll_s, tick_s) <= 0:
            raise ValueError("publish_s, poll_s and tick_s must be positive")
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        self.device = device
        self.broker = broker
        self.model = model or PowerModel()
        self.publish_s = publish_s
        self.tick_s = tick_s
        self.qos = qos
        self.kwh_decimals = wire.DEFAULT_KWH_DECIMALS[self.vendor] if kwh_decimals is None else kwh_decimals
        self.cuts_printer = cuts_printer
        self.topic = wire.telemetry_topic(self.vendor, device)
        self.published = 0  # telemetry messages sent
        self.connected = asyncio.Event()  # set while connected and listening for commands
        self._printer = printer
        self._watch = PrinterWatch(printer, self._follow, name=device, poll_s=poll_s) if printer else None
        self._relay_on = relay_on
        self._snapshot: HostSnapshot = OFFLINE
        self._power_w = 0.0
        self._consumed_kwh = 0.0
        self._counter_kwh = 0.0
        self._counter_since = datetime.now(UTC)
        self._running = False  # energy flows only while run() runs
        self._last_mono = time.monotonic()
        self._last_wall = time.time()
        self.trace = Trace("consumed_kwh", maxlen=trace_maxlen, log_path=trace_log)
        self._record()
        self._report_now = asyncio.Event()
        self._session_over = asyncio.Event()
        self._down_until = 0.0  # monotonic; publishing pauses until then (a reboot)
        self._tasks: asyncio.TaskGroup | None = None  # run()'s, while it runs
        self._update_power()

    # ---- state and ground truth -------------------------------------------------------------

    @property
    def relay_on(self) -> bool:
        return self._relay_on

    @property
    def power_w(self) -> float:
        return self._power_w

    @property
    def counter_kwh(self) -> float:
        """The counter as the plug would publish it now (unrounded)."""
        self._integrate()
        return self._counter_kwh

    def energy_kwh_between(self, t0: datetime, t1: datetime) -> float:
        """Energy drawn through the plug from t0 to t1 (aware datetimes), whatever the counter did."""
        self._integrate()
        return self.trace.between(t0, t1)

    def counter_kwh_at(self, t: datetime) -> float | None:
        """What the plug's counter stood at at `t` (unrounded); None before the plug started."""
        self._integrate()
        return self.trace.counter_at(t, "counter_kwh")

    def reset_counter(self) -> None:
        """The counter starts again from 0, as after Tasmota's `EnergyTotal 0` or a re-flash."""
        self._integrate()
        self._counter_kwh = 0.0
        self._counter_since = datetime.now(UTC)
        self._record()
        log.info("sim=%s counter reset", self.device)

    def restart(self, downtime_s: float = 3.0, *, keep_counter: bool = True) -> None:
        """Reboot: the MQTT connection drops and nothing is published for `downtime_s`; the relay and
        the printer's power stay as they were, and the counter is kept (or starts from 0)."""
        if not keep_counter:
            self.reset_counter()
        self._down_until = time.monotonic() + downtime_s
        self._session_over.set()
        log.info("sim=%s restarting for %.1fs", self.device, downtime_s)

    def set_relay(self, on: bool) -> None:
        """Switch the relay as a button press would; the change is published at once."""
        if on == self._relay_on:
            return
        self._relay_on = on
        self._update_power()
        self._report_now.set()
        log.info("sim=%s relay %s", self.device, "on" if on else "off")
        if self.cuts_printer and self._printer is not None and self._tasks is not None:
            self._tasks.create_task(self._power_printer(self._printer, on))

    def meter(self) -> Meter:
        """What the plug reads now."""
        self._integrate()
        now = datetime.now(UTC)
        minute = int(now.timestamp()) // 60 * 60
        by_minute = tuple(self._minute_mwh(minute - 60 * (k + 1)) for k in range(3))
        return Meter(
            relay_on=self._relay_on,
            power_w=self._power_w,
            voltage_v=self.model.voltage_v,
            counter_kwh=self._counter_kwh,
            time=now,
            counter_since=self._counter_since,
            by_minute_mwh=(by_minute[0], by_minute[1], by_minute[2]),
        )

    def _minute_mwh(self, start_s: int) -> float:
        try:
            kwh = self.trace.between(
                datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(start_s + 60, UTC)
            )
        except ValueError:  # older than the trace still kept
            return 0.0
        return kwh * 1e6

    def _integrate(self) -> None:
        mono = time.monotonic()
        dt = mono - self._last_mono
        if dt <= 0 or not self._running:
            return
        energy = self._power_w * dt * _KWH_PER_WS
        self._consumed_kwh += energy
        self._counter_kwh += energy
        self._last_mono = mono
        # Energy from the monotonic clock; the trace in wall time (the daemon's job times are wall
        # time), held still rather than stepping back if the wall clock is set back.
        self._last_wall = max(time.time(), self._last_wall)
        self._record()

    def _record(self) -> None:
        self.trace.add(self._last_wall, self._consumed_kwh, counter_kwh=self._counter_kwh,
                       power_w=self._power_w)  # fmt: skip

    def _follow(self, snapshot: HostSnapshot) -> None:
        self._snapshot = snapshot
        self._update_power()

    def _update_power(self) -> None:
        watts = printer_power_w(self.model, relay_on=self._relay_on, state=self._snapshot.state,
                                temperatures=self._snapshot.temperatures)  # fmt: skip
        if watts != self._power_w:
            self._integrate()  # the old power up to now, then the new one
            self._power_w = watts
            self._record()

    async def _power_printer(self, printer: OctoPrintClient, on: bool) -> None:
        try:
            await (printer.connect() if on else printer.disconnect())
        except DeviceError as exc:
            log.warning("sim=%s could not %s the printer: %s", self.device,
                        "connect" if on else "disconnect", exc)  # fmt: skip

    # ---- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the printer, integrate and publish until `stop` is set. Broker outages are retried.
        Energy is counted from the start of run() to its end."""
        self._last_mono = time.monotonic()
        self._last_wall = max(time.time(), self._last_wall)
        self._running = True
        log.info(
            "sim=%s %s plug publishing on %s every %.1fs",
            self.device,
            self.vendor,
            self.topic,
            self.publish_s,
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self._integrate_loop(stop))
                tasks.create_task(self._mqtt_loop(stop))
                if self._watch is not None:
                    tasks.create_task(self._watch.run(stop))
        finally:
            self._tasks = None
            self._integrate()
            self._running = False
            self.trace.close()

    async def _integrate_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._integrate()
            await pause(stop, self.tick_s)

    async def _mqtt_loop(self, stop: asyncio.Event) -> None:
        down = False
        while not stop.is_set():
            rebooting = self._down_until - time.monotonic()
            if rebooting > 0:
                await pause(stop, rebooting)
                continue
            self._session_over.clear()
            try:
                async with self.broker.client(f"sim-{self.vendor}-{self.device}") as client:
                    for topic in wire.command_subscriptions(self.vendor, self.device):
                        await client.subscribe(topic, qos=1)
                    self.connected.set()
                    if down:
                        log.info("sim=%s broker reachable again", self.device)
                        down = False
                    try:
                        await self._publish_relay(client)
                        await first_of(
                            stop.wait(),
                            self._session_over.wait(),
                            self._publish_loop(client),
                            self._listen(client),
                        )
                    finally:
                        # At once: leaving the client waits for its disconnect, which a broker that
                        # went away answers only when aiomqtt's own timeout ends.
                        self.connected.clear()
            except aiomqtt.MqttError as exc:
                if not down:
                    log.warning("sim=%s broker unreachable, retrying: %s", self.device, exc)
                    down = True
                await pause(stop, 1.0)
            finally:
                self.connected.clear()

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await self._publish_telemetry(client)
            try:
                async with asyncio.timeout(self.publish_s):
                    await self._report_now.wait()
            except TimeoutError:
                continue
            self._report_now.clear()
            await self._publish_relay(client)

    async def _publish_telemetry(self, client: aiomqtt.Client) -> None:
        topic, payload = wire.telemetry(self.vendor, self.device, self.meter(), self.kwh_decimals)
        await client.publish(topic, payload, qos=self.qos)
        self.published += 1

    async def _publish_relay(self, client: aiomqtt.Client) -> None:
        if self.vendor is PlugVendor.tasmota:  # the others' relay state is part of their telemetry
            topic, payload = wire.relay_report(self.vendor, self.device, self.meter(), self.kwh_decimals)
            await client.publish(topic, payload, qos=1)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            command = wire.parse_command(self.vendor, self.device, message.topic.value, payload)
            if command is None:
                log.debug("sim=%s ignored a message on %s", self.device, message.topic.value)
                continue
            await self._obey(client, command)

    async def _obey(self, client: aiomqtt.Client, command: Command) -> None:
        was_on = self._relay_on
        if command.action is Action.reset_counter:
            self.reset_counter()
        elif command.action is not Action.status:
            want = not was_on if command.action is Action.toggle else command.action is Action.on
            self.set_relay(want)
        if self.vendor is PlugVendor.shelly and command.reply_to:
            reply = wire.shelly_reply(self.device, command, was_on, self.meter(), self.kwh_decimals)
            await client.publish(f"{command.reply_to}/rpc", reply, qos=1)
        self._report_now.set()  # a command always gets its state published back
