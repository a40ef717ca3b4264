"""A simulated ESPHome filament scale under the spool of a real OctoPrint printer.

`SimScale` polls OctoPrint's `/api/job` for the printed file and how far into it the printer has got
(`progress.filepos`, bytes: the percentage is sometimes whole numbers only), downloads the file once
per job and reads its E moves (`devices.sim.extrusion`), so the spool's weight falls as the printer
extrudes. It publishes the gross weight (empty spool + filament) in grams as plain text on
`<prefix>/sensor/<name>/state`, retained and at QoS 0 as ESPHome does. Ground truth:
`grams_used_between(t0, t1)` from its own bounded trace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import aiomqtt

from devices.octoprint import OctoPrintClient
from devices.sim.extrusion import FILAMENT_DIAMETER_MM, ExtrusionProfile, grams, profile
from devices.sim.follow import Broker, pause
from devices.sim.trace import Trace

log = logging.getLogger(__name__)

# /api/job state texts while a job holds the file (heat-up counts as Printing).
_ACTIVE = ("Printing", "Starting", "Paused", "Pausing", "Resuming", "Finishing", "Cancelling")


@dataclass(frozen=True, slots=True)
class JobProgress:
    """What /api/job says about the running file."""

    state: str
    path: str | None
    filepos: int | None

    @property
    def active(self) -> bool:
        return self.state.startswith(_ACTIVE)


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def job_progress(body: Any) -> JobProgress:
    """Pick state, file path and file position out of an /api/job answer (missing parts are None)."""
    body = _obj(body)
    file = _obj(_obj(body.get("job")).get("file"))
    progress = _obj(body.get("progress"))
    path = file.get("path") if isinstance(file.get("path"), str) and file.get("path") else None
    filepos = progress.get("filepos")
    filepos = filepos if isinstance(filepos, int) and not isinstance(filepos, bool) and filepos >= 0 else None
    state = body.get("state") if isinstance(body.get("state"), str) else "Unknown"
    return JobProgress(state, path, filepos)


class SimScale:
    """An ESPHome hx711 scale weighing the spool on `printer`; `name` is the ESPHome sensor's object id."""

    def __init__(
        self,
        name: str,
        broker: Broker,
        printer: OctoPrintClient,
        *,
        prefix: str = "scales",
        material: str = "PLA",
        filament_g: float = 1000.0,
        spool_empty_g: float = 220.0,
        diameter_mm: float = FILAMENT_DIAMETER_MM,
        publish_s: float = 1.0,
        poll_s: float = 0.5,
        decimals: int = 1,
        noise_g: float = 0.0,
        seed: int | None = None,
        trace_maxlen: int = 200_000,
        trace_log: Path | None = None,
    ) -> None:
        for part in (name, prefix):
            if not part or any(c in part for c in "/+#\0"):
                raise ValueError(f"scale topic part {part!r} cannot be one MQTT topic level")
        grams(1.0, material, diameter_mm)  # ValueError now for an unknown material, not mid-print
        if min(publish_s, poll_s) <= 0 or filament_g < 0 or spool_empty_g < 0 or noise_g < 0:
            raise ValueError("publish_s and poll_s must be positive; weights and noise not negative")
        self.name = name
        self.broker = broker
        self.printer = printer
        self.topic = f"{prefix}/sensor/{name}/state"
        self.material = material
        self.diameter_mm = diameter_mm
        self.publish_s = publish_s
        self.poll_s = poll_s
        self.decimals = decimals
        self.noise_g = noise_g
        self.published = 0
        self.connected = asyncio.Event()
        self._random = random.Random(seed)  # noqa: S311 - measurement noise, not security
        self._spool_empty_g = spool_empty_g
        self._loaded_g = filament_g
        self._used_at_load_g = 0.0
        self._used_before_g = 0.0  # by finished jobs (and the running one up to the scale's start)
        self._job_g = 0.0
        self._job_base_g = 0.0
        self._job_path: str | None = None
        self._job_profile: ExtrusionProfile | None = None
        self._job_pos = 0
        self._active = False
        self._first_poll = True
        self._down = False
        # Steps: between two polls the scale does not know when the printer extruded, and a line drawn
        # between them would put grams before a job's start that the printer drew after it.
        self.trace = Trace("used_g", maxlen=trace_maxlen, log_path=trace_log, steps=True)
        self._record()

    # ---- state and ground truth -------------------------------------------------------------

    @property
    def used_g(self) -> float:
        """Filament used since the scale started, over every spool."""
        return self._used_before_g + self._job_g

    @property
    def weight_g(self) -> float:
        """The true gross weight on the scale (without noise)."""
        on_spool = max(0.0, self._loaded_g - (self.used_g - self._used_at_load_g))
        return self._spool_empty_g + on_spool

    def grams_used_between(self, t0: datetime, t1: datetime) -> float:
        """Filament the printer drew from the spool from t0 to t1 (aware datetimes)."""
        return self.trace.between(t0, t1)

    def load_spool(self, filament_g: float, spool_empty_g: float | None = None) -> None:
        """A new spool goes on the scale (published with the next message)."""
        if filament_g < 0 or (spool_empty_g is not None and spool_empty_g < 0):
            raise ValueError("weights must not be negative")
        self._loaded_g = filament_g
        self._used_at_load_g = self.used_g
        if spool_empty_g is not None:
            self._spool_empty_g = spool_empty_g
        self._record()

    def _record(self) -> None:
        self.trace.add(time.time_ns() / 1e9, self.used_g, gross_g=self.weight_g)

    # ---- following the printer ----------------------------------------------------------------

    async def poll(self) -> None:
        """Read the printer's job once and move the spool's weight along."""
        progress = await self._fetch_job()
        if progress is None:
            return
        started = progress.active and (
            not self._active
            or progress.path != self._job_path
            or (progress.filepos is not None and progress.filepos < self._job_pos)
        )
        if started:
            self._used_before_g += self._job_g
            self._job_g = 0.0
            self._job_path, self._job_profile, self._job_pos = progress.path, None, 0
            self._job_base_g = 0.0
        if progress.path is not None and progress.path == self._job_path and progress.filepos is not None:
            if self._job_profile is None:
                self._job_profile = await self._download(progress.path)
            if self._job_profile.offsets:
                self._job_pos = max(self._job_pos, progress.filepos)
                drawn = grams(self._job_profile.drawn_at(self._job_pos), self.material, self.diameter_mm)
                if started and self._first_poll:  # it was printing before we started: count from now
                    self._job_base_g = drawn
                self._job_g = max(self._job_g, drawn - self._job_base_g)
        self._active = progress.active
        self._first_poll = False
        self._record()

    async def _get(self, path: str) -> tuple[int, bytes]:
        url = f"{self.printer.base_url}{path}"
        async with asyncio.timeout(self.printer.timeout):
            async with self.printer.session.get(url, headers=self.printer.headers) as resp:
                return resp.status, await resp.read()

    async def _fetch_job(self) -> JobProgress | None:
        problem = ""
        try:
            status, body = await self._get("/api/job")
            progress = job_progress(json.loads(body)) if status == 200 else None
            problem = f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            progress, problem = None, type(exc).__name__
        if progress is None:
            if not self._down:
                log.warning(
                    "sim=%s printer=%s job unreadable: %s", self.name, self.printer.display_url, problem
                )
                self._down = True
            return None
        if self._down:
            log.info("sim=%s printer=%s answers again", self.name, self.printer.display_url)
            self._down = False
        return progress

    async def _download(self, path: str) -> ExtrusionProfile:
        """The file's extrusion; an empty one (nothing drawn, logged once) when it cannot be had."""
        try:
            status, body = await self._get(f"/downloads/files/local/{quote(path)}")
            problem = f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, body, problem = 0, b"", type(exc).__name__
        if status != 200:
            log.warning(
                "sim=%s cannot download %s (%s): the job shows no filament used", self.name, path, problem
            )
            return ExtrusionProfile((), (), 0)
        return profile(body)

    # ---- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the printer and publish until `stop` is set. Broker outages are retried."""
        log.info("sim=%s scale publishing on %s every %.1fs", self.name, self.topic, self.publish_s)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._poll_loop(stop))
                tasks.create_task(self._mqtt_loop(stop))
        finally:
            self.trace.close()

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()
            await pause(stop, self.poll_s)

    def reading_text(self) -> str:
        """The payload of the next message: gross grams (with noise, if any) as ESPHome prints them."""
        noise = self._random.gauss(0.0, self.noise_g) if self.noise_g else 0.0
        return f"{self.weight_g + noise:.{self.decimals}f}"

    async def _mqtt_loop(self, stop: asyncio.Event) -> None:
        down = False
        while not stop.is_set():
            try:
                async with self.broker.client(f"sim-scale-{self.name}") as client:
                    self.connected.set()
                    if down:
                        log.info("sim=%s broker reachable again", self.name)
                        down = False
                    while not stop.is_set():
                        await client.publish(self.topic, self.reading_text().encode(), qos=0, retain=True)
                        self.published += 1
                        await pause(stop, self.publish_s)
            except aiomqtt.MqttError as exc:
                if not down:
                    log.warning("sim=%s broker unreachable, retrying: %s", self.name, exc)
                    down = True
                await pause(stop, 1.0)
            finally:
                self.connected.clear()
