"""Config reload on SIGHUP: printers and sensors change without a restart; the rest waits for one.

What changes at run time:
- a printer added: its coordinator starts in the daemon's TaskGroup and the scheduler may use it;
- a printer removed: its coordinator stops. One with a job on it (dispatching, printing, paused) takes
  no new job and is kept until that job has ended, then stops: a removal never abandons a print;
- a printer changed (address, key, group, nozzle, …): removed and added again, by the same rule;
- `[[sensors]]` changed: the MQTT ingest restarts with the new list.
Every other section (api, controller, influx, mqtt, jobs, costs, accounting, members, membership) is
compared and, when changed, logged as needing a restart; the running values stay. A config that does
not load (ConfigError) is refused as a whole with the reason logged, naming the key; nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from pathlib import Path

from controller.api.collector import MetricSources
from controller.config import Config, ConfigError, PrinterConfig, SensorConfig, load_config
from controller.core.events import EventFeed, PrinterChanged
from controller.fleet.coordinator import Fleet, PrinterCoordinator
from controller.jobs import ACTIVE_STATES
from controller.jobs.dispatch import Dispatcher
from controller.jobs.queue import JobQueue
from controller.telemetry.ingest import MqttIngest
from devices.urls import redact_url

log = logging.getLogger(__name__)

# How often a printer kept for its job is looked at again (its job's end is in the store).
RETIRE_CHECK_S = 2.0
_RUNTIME = ("printers", "sensors")


def _same_printer(a: PrinterConfig, b: PrinterConfig) -> bool:
    return a.model_dump() == b.model_dump() and a.api_key == b.api_key


def _sensor_key(sensors: list[SensorConfig]) -> list[object]:
    return [s.model_dump() for s in sensors]


def restart_sections(old: Config, new: Config) -> list[str]:
    """The sections other than printers and sensors that differ: they need a restart to count."""
    names = [name for name in Config.model_fields if name not in _RUNTIME]
    return [name for name in names if getattr(old, name) != getattr(new, name)]


class Reloader:
    """Owns the tasks a reload starts and stops: each printer's coordinator and the MQTT ingest.

    `start(tg, stop)` runs them; `request()` (the SIGHUP handler) asks for a reload, which `run(stop)`
    performs between other work. On `stop` every task it started is told to stop.
    """

    def __init__(
        self,
        config: Config,
        path: Path | None,
        *,
        fleet: Fleet,
        queue: JobQueue,
        dispatcher: Dispatcher,
        feed: EventFeed | None,
        sources: MetricSources | None = None,
    ) -> None:
        self.config = config  # the config the daemon runs with: printers and sensors as last applied
        self.path = path
        self.fleet = fleet
        self.queue = queue
        self.dispatcher = dispatcher
        self.feed = feed
        self.sources = sources
        self.ingest: MqttIngest | None = None
        self._asked = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._stops: dict[str, asyncio.Event] = {}  # per printer, and "mqtt-ingest"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retiring: dict[str, PrinterConfig | None] = {}  # printer → its new config, None: removed
        self._told: set[str] = set()  # leaving printers whose wait for a job was logged

    def request(self) -> None:
        """Ask for a reload (the SIGHUP handler; several before the next one count as one)."""
        self._asked.set()

    def start(self, tg: asyncio.TaskGroup) -> None:
        """Run every printer's coordinator and, with sensors and [mqtt], the ingest."""
        self._tg = tg
        for coordinator in self.fleet.coordinators.values():
            self._run_printer(coordinator)
        self._start_ingest(self.config)

    async def run(self, stop: asyncio.Event) -> None:
        """Reload when asked until `stop`; then stop every task started here."""
        try:
            while not stop.is_set():
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._asked.wait())]
                timeout = RETIRE_CHECK_S if self._retiring else None
                try:
                    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for wait in waits:
                        wait.cancel()
                if stop.is_set():
                    break
                try:
                    if self._asked.is_set():
                        self._asked.clear()
                        await self.reload()
                    await self._retire_finished()
                except Exception:
                    # A fault here must not take the daemon (and every print it follows) down with it.
                    log.exception("config reload failed part-way; the daemon keeps running")
        finally:
            for event in self._stops.values():
                event.set()

    async def reload(self) -> None:
        """Read the config file again and apply what can change at run time."""
        if self.path is None:
            log.warning("config reload: the daemon was not started from a file; nothing to read")
            return
        log.info("config reload: reading %s", self.path)
        try:
            new = await asyncio.to_thread(load_config, self.path)
        except ConfigError as exc:
            # The message names the file and the key; a traceback would add nothing for the operator.
            log.error("config reload refused, keeping the running config: %s", exc)  # noqa: TRY400
            return
        old = self.config
        for section in restart_sections(old, new):
            log.warning("config reload: [%s] changed: needs a restart; keeping the running values", section)
        await self._apply_printers(old, new)
        if _sensor_key(old.sensors) != _sensor_key(new.sensors):
            await self._restart_ingest(new)
        self.config = old.model_copy(update={"printers": new.printers, "sensors": new.sensors})
        self.queue.config = self.config  # submit checks and slots see the new printers
        log.info(
            "config reload done: printers=%d sensors=%d%s",
            len(self.fleet.coordinators),
            len(new.sensors),
            f" (kept for their jobs: {', '.join(sorted(self._retiring))})" if self._retiring else "",
        )

    async def _apply_printers(self, old: Config, new: Config) -> None:
        before = {p.name: p for p in old.printers}
        after = {p.name: p for p in new.printers}
        for name, printer in before.items():
            if name not in after:
                self._retiring[name] = None
            elif not _same_printer(printer, after[name]):
                self._retiring[name] = after[name]
        for name, printer in after.items():
            if name in self._retiring and self._retiring[name] is None:
                self._retiring[name] = printer  # removed by an earlier reload, back before its job ended
            if name not in before and name not in self.fleet.coordinators:
                self._add(printer)
        await self._retire_finished()

    async def _retire_finished(self) -> None:
        """Stop each printer leaving the config once it takes no new job and its job has ended; then
        start its new config, if it has one.

        A leaving printer is first marked retiring (the dispatcher stops choosing it) and stopped at a
        later look: a round that chose it just before has recorded its job by then, and that job keeps
        the printer until it ends.
        """
        if not self._retiring:
            return
        store = self.queue.store
        active = await store.call(store.sync.list_jobs, ACTIVE_STATES)
        busy = {job.printer: job for job in active if job.printer}
        for name, replacement in list(self._retiring.items()):
            coordinator = self.fleet.get(name)
            if coordinator is not None and not coordinator.retiring:
                coordinator.retiring = True
                continue
            job = busy.get(name)
            if coordinator is not None and job is not None:
                if name not in self._told:
                    self._told.add(name)
                    log.warning(
                        "config reload: printer=%s %s, but job=%d is %s there: it takes no new job and "
                        "is kept until that job ends",
                        name,
                        "changed" if replacement is not None else "removed",
                        job.id,
                        job.state,
                    )
                continue
            del self._retiring[name]
            self._told.discard(name)
            await self._stop_printer(name)
            if replacement is not None:
                self._add(replacement)

    def _add(self, printer: PrinterConfig) -> None:
        coordinator = self.fleet.add(printer)
        # The tracker keeps the last push events per printer and has no public way to add one yet.
        self.dispatcher.tracker._events.setdefault(printer.name, deque(maxlen=32))
        self._run_printer(coordinator)
        log.info("config reload: printer=%s added (%s)", printer.name, redact_url(str(printer.url)))
        if printer.plugs or printer.scale:
            log.warning(
                "config reload: printer=%s: its plug and scale are measured after a restart", printer.name
            )

    def _run_printer(self, coordinator: PrinterCoordinator) -> None:
        assert self._tg is not None, "start() first"
        name = coordinator.printer.name
        stop = self._stops[name] = asyncio.Event()
        self._tasks[name] = self._tg.create_task(coordinator.run(stop), name=f"printer:{name}")

    async def _stop_printer(self, name: str) -> None:
        stop, task = self._stops.pop(name, None), self._tasks.pop(name, None)
        if stop is not None:
            stop.set()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Out of the fleet only once stopped, and with no await before a replacement is added: the
        # queue's printer list never names a printer the fleet lacks.
        coordinator = self.fleet.remove(name)
        if coordinator is not None and self.feed is not None:
            self.feed.publish_nowait(PrinterChanged(coordinator.status))  # a round without it
        log.info("config reload: printer=%s no longer watched", name)

    def _start_ingest(self, config: Config) -> None:
        if config.mqtt is None or not config.sensors or self._tg is None:
            return
        ingest = MqttIngest(config.mqtt, config.sensors, self.feed or EventFeed())
        if self.ingest is not None:
            ingest.stats = self.ingest.stats  # /metrics counters keep counting across a restart
            ingest.stats.connected = False  # until the new client has subscribed
        self.ingest = ingest
        if self.sources is not None:
            self.sources.ingest = ingest
        stop = self._stops["mqtt-ingest"] = asyncio.Event()
        self._tasks["mqtt-ingest"] = self._tg.create_task(ingest.run(stop), name="mqtt-ingest")

    async def _restart_ingest(self, new: Config) -> None:
        stop, task = self._stops.pop("mqtt-ingest", None), self._tasks.pop("mqtt-ingest", None)
        if stop is not None and task is not None:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The running [mqtt] section: a changed one needs a restart (logged above).
        self._start_ingest(self.config.model_copy(update={"sensors": new.sensors}))
        log.info("config reload: MQTT ingest restarted with %d sensors", len(new.sensors))
