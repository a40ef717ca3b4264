"""Fault: InfluxDB is down for two minutes while sensor readings, printer points and a print's job
points flow; once it is back, every point is there.

tests/test_telemetry.py covers a 30 s outage across a daemon restart with one scale; this one is the
long outage of a running farm, with a real printer and a print during it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path

import pytest

from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.faults.conftest import Sensor, bed_clearing, publishing, report, telemetry_sections
from tests.helpers import PrinterSpec, config_for, metric_value
from tests.influxql import create_db, influxql
from tests.peers.servers import InfluxPeer, MosquittoPeer

pytestmark = pytest.mark.faults

OUTAGE_S = 120.0
SENSORS = 2
INTERVAL_S = 0.1  # each scale: ten readings a second
PRINTER_INTERVAL_S = 1.0


async def _count(influx: InfluxPeer, query: str) -> int:
    rows = await influxql(influx, query)
    return int(rows[0]["count"]) if rows else 0


async def _stored_total(influx: InfluxPeer) -> int:
    """Every point in the database: readings, printer states, farm counts, job changes, state changes."""
    queries = ("count(weight_g) FROM material", "count(state) FROM printer", "count(queued) FROM farm",
               "count(state) FROM job", "count(state) FROM printer_state")  # fmt: skip
    return sum([await _count(influx, f"SELECT {q}") for q in queries])


async def test_two_minutes_without_influxdb_lose_no_point(
    octoprint: OctoPrintFactory, shipped_broker: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    await create_db(influxdb)
    (peer,) = octoprint(1)
    sections = "[jobs]\ndispatch_interval = 0.5\n" + telemetry_sections(
        shipped_broker,
        influxdb.url,
        tmp_path / "etc",
        sensors=SENSORS,
        client_id="farmctl-outage",
        extra=f"printer_interval = {PRINTER_INTERVAL_S}\n",
    )
    config = config_for(
        tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS, sections=sections
    )
    sensors = [Sensor(shipped_broker, i, INTERVAL_S) for i in range(SENSORS)]
    async with running_farm(config, tmp_path / "etc/secrets") as farm, bed_clearing(farm):
        await asyncio.sleep(1.0)  # subscribed
        async with publishing(sensors):
            async with asyncio.timeout(20):
                while await _count(influxdb, "SELECT count(weight_g) FROM material") < 20:
                    await asyncio.sleep(0.2)
            await asyncio.to_thread(influxdb.stop)
            down_ns, down = time.time_ns(), time.monotonic()
            # A print runs from start to end while the database is away.
            (job,) = await farm.submit(print_file(tmp_path / "part.gcode", seconds=3))
            await farm.wait_job(job["id"], {"completed"}, 60)
            spooled = 0.0
            while time.monotonic() - down < OUTAGE_S:
                metrics = (await farm.api.get("/metrics")).text
                spooled = max(spooled, metric_value(metrics, "farmctl_spool_points"))
                await asyncio.sleep(2.0)
            await asyncio.to_thread(influxdb.start_and_wait)
            up_ns, up = time.time_ns(), time.monotonic()
            async with asyncio.timeout(60):  # replayed while the readings keep coming
                while metric_value((await farm.api.get("/metrics")).text, "farmctl_spool_points") != 0:
                    await asyncio.sleep(0.1)
            replayed_s = time.monotonic() - up
            await asyncio.sleep(2.0)  # readings go on after the replay
        published = sorted(v for s in sensors for v in s.acked)
        with contextlib.suppress(TimeoutError):  # what is missing then is counted below
            async with asyncio.timeout(30):
                while await _count(influxdb, "SELECT count(weight_g) FROM material") < len(published):
                    await asyncio.sleep(0.2)
        # Everything farmctl wrote is stored once: its count of written points, read twice around the
        # database's own count with no write in between, equals that count.
        for _ in range(30):
            before = metric_value((await farm.api.get("/metrics")).text, "farmctl_points_written_total")
            stored = await _stored_total(influxdb)
            metrics = (await farm.api.get("/metrics")).text
            written = metric_value(metrics, "farmctl_points_written_total")
            if before == written:
                break
            await asyncio.sleep(0.3)

    (sums,) = await influxql(influxdb, "SELECT count(weight_g), sum(weight_g) FROM material")
    assert sums["count"] == len(published), (sums, len(published))
    assert sums["sum"] == sum(published)  # integers well below 2**53: exact as floats
    assert not any(s.resent for s in sensors)  # the broker stayed up: each reading was sent once
    # S608: InfluxQL built from our own integer timestamps, no input anywhere.
    outage = f"time >= {down_ns} AND time <= {up_ns}"
    during = await _count(influxdb, f"SELECT count(weight_g) FROM material WHERE {outage}")  # noqa: S608
    assert during >= OUTAGE_S / INTERVAL_S * SENSORS * 0.5, during  # readings from the outage itself

    # The printer's state every interval, the outage included: no gap in its series.
    times = [int(r["time"]) for r in await influxql(influxdb, "SELECT state FROM printer")]
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(times)]
    assert max(gaps) < 3 * PRINTER_INTERVAL_S, max(gaps)
    printer_during = await _count(influxdb, f"SELECT count(state) FROM printer WHERE {outage}")  # noqa: S608
    assert printer_during >= 0.8 * OUTAGE_S / PRINTER_INTERVAL_S, printer_during
    # The print that ran while the database was away: each of its state changes.
    jobs = await influxql(influxdb, "SELECT state FROM job GROUP BY *")
    assert sorted(r["state"] for r in jobs) == sorted(["queued", "dispatching", "printing", "completed"])

    assert written == stored, (written, stored)
    assert 'farmctl_points_dropped_total{reason="rejected"} 0' in metrics
    assert 'farmctl_points_dropped_total{reason="spool_full"} 0' in metrics
    report(
        "database_outage",
        {
            "outage_s": round(up - down),
            "readings_published": len(published),
            "readings_stored": int(sums["count"]),
            "readings_during_outage": during,
            "points_written": int(stored),
            "printer_points_during_outage": printer_during,
            "job_points": len(jobs),
            "peak_spool_points": int(spooled),
            "replay_s": round(replayed_s, 1),
            "max_printer_gap_s": round(max(gaps), 1),
        },
    )
