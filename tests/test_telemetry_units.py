"""Pure telemetry pieces: line protocol, the spool's bounds and order, the writer's isolation of bad
points, and the ingest path under arbitrary topics and payloads."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.config import MqttConfig, SensorConfig
from controller.core.events import EventFeed, SensorReadings, Subscription
from controller.telemetry.ingest import MqttIngest
from controller.telemetry.sink import LineMaker
from controller.telemetry.spool import Spool
from controller.telemetry.writer import TelemetryWriter
from devices.influx import InfluxRejected, InfluxUnavailable, Point, to_line


def test_line_protocol_escapes_and_writes_floats_only() -> None:
    point = Point(
        "power", {"sensor": "plug 1", "printer": "a,b", "empty": ""}, {"power_w": 120, "note": 'say "hi"'}, 5
    )
    assert to_line(point) == 'power,printer=a\\,b,sensor=plug\\ 1 power_w=120.0,note="say \\"hi\\"" 5'
    assert to_line(Point("m", {}, {"a": math.nan, "b": 1.5}, 1)) == "m b=1.5 1"
    with pytest.raises(ValueError, match="no finite field"):
        to_line(Point("m", {}, {"a": math.inf}, 1))


def test_spool_keeps_order_survives_reopening_and_drops_the_oldest_when_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=64 * 1024, segment_bytes=4096)
    lines = [f"m v={i}.0 {i}" for i in range(300)]
    for start in range(0, 300, 30):
        spool.append(lines[start : start + 30])
    assert spool.lines == 300
    reopened = Spool(tmp_path / "spool", max_bytes=64 * 1024, segment_bytes=4096)
    replayed: list[str] = []
    while (segment := reopened.oldest()) is not None:
        path, chunk = segment
        replayed += chunk
        reopened.remove(path)
    assert replayed == lines
    assert not reopened

    caplog.set_level(logging.WARNING)
    small = Spool(tmp_path / "small", max_bytes=8192, segment_bytes=2048)
    many = [f"m v={i}.0 {i}" for i in range(3000)]
    for start in range(0, 3000, 50):
        small.append(many[start : start + 50])
    assert small.size <= 8192 + 2048
    assert small.dropped > 0
    assert small.dropped + small.lines == 3000
    kept: list[str] = []
    while (segment := small.oldest()) is not None:
        kept += segment[1]
        small.remove(segment[0])
    assert kept == many[-len(kept) :]  # the newest survive, in order
    assert "oldest points" in caplog.text


class FlakyDatabase:
    """A writer stand-in for the pure batching logic: refuses lines containing BAD, can be down."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.down = False

    async def write(self, lines: list[str]) -> None:
        if self.down:
            raise InfluxUnavailable("down")
        if any("BAD" in line for line in lines):
            raise InfluxRejected("bad point", 400)
        self.rows += lines

    async def close(self) -> None:
        return None


async def test_writer_isolates_bad_points_and_replays_the_spool_in_order(tmp_path: Path) -> None:
    db = FlakyDatabase()
    writer = TelemetryWriter(
        db, Spool(tmp_path / "spool", 1 << 20), batch_size=8, flush_interval=0.05, retry_max=0.2
    )
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    for i in range(16):
        await writer.put("m BAD=1" if i in (3, 11) else f"m v={i}.0 {i}")
    await asyncio.sleep(0.3)
    assert writer.stats.rejected == 2
    assert len(db.rows) == 14  # the neighbours of each bad point were written
    db.down = True
    for i in range(16, 40):
        await writer.put(f"m v={i}.0 {i}")
    await asyncio.sleep(0.4)
    assert writer.spool.lines == 24
    db.down = False
    for i in range(40, 44):
        await writer.put(f"m v={i}.0 {i}")
    await asyncio.sleep(1.0)
    stop.set()
    await task
    assert [row for row in db.rows if int(row.split()[-1]) >= 16] == [f"m v={i}.0 {i}" for i in range(16, 44)]
    assert not writer.spool


class TimedDatabase:
    """Records each write's size and when it came."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, float]] = []

    async def write(self, lines: list[str]) -> None:
        self.writes.append((len(lines), time.monotonic()))

    async def close(self) -> None:
        return None


async def test_writer_batches_by_size_and_age_and_ends_a_burst_without_waiting(tmp_path: Path) -> None:
    db = TimedDatabase()
    writer = TelemetryWriter(db, Spool(tmp_path / "spool", 1 << 20), batch_size=100, flush_interval=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    # A burst of 201: two full batches at once, the one line after them once lines stop.
    for i in range(201):
        await writer.put(f"m v={i}.0 {i}")
    burst_end = time.monotonic()
    await asyncio.sleep(0.6)
    assert [size for size, _ in db.writes] == [100, 100, 1]
    assert db.writes[2][1] - burst_end < 0.4  # not the flush_interval of 1 s
    # A burst smaller than a batch but over a fifth of one: the same.
    await asyncio.sleep(1.2)  # the next batch after one that was not full
    for i in range(30):
        await writer.put(f"m v={i}.0 {i}")
    burst_end = time.monotonic()
    await asyncio.sleep(0.6)
    assert [size for size, _ in db.writes[3:]] == [30]
    assert db.writes[3][1] - burst_end < 0.4
    # A trickle: a small batch waits for its age (one write a second, not one per line).
    start = time.monotonic()
    for i in range(5):
        await writer.put(f"m v={i}.0 {i}")
        await asyncio.sleep(0.15)
    await asyncio.sleep(0.6)
    assert [size for size, _ in db.writes[4:]] == [5]
    assert db.writes[4][1] - start >= 0.95
    stop.set()
    await task


def _ingest() -> tuple[MqttIngest, Subscription[SensorReadings]]:
    sensors = [
        SensorConfig(id="plug", topic="tele/+/SENSOR", profile="tasmota", printer=None),
        SensorConfig(id="sh", topic="shelly/status/switch:0", profile="shelly"),
        SensorConfig(id="z", topic="zigbee2mqtt/#", profile="zigbee2mqtt"),
        SensorConfig(id="scale", topic="esp/sensor/w/state", profile="esphome", kind="weight"),
        SensorConfig.model_validate(
            {"id": "j", "topic": "j/#", "profile": "json", "measurement": "power",
             "fields": [{"path": "a.0.b", "field": "power_w"}]}
        ),
    ]  # fmt: skip
    feed = EventFeed()
    return MqttIngest(MqttConfig(), sensors, feed), feed.subscribe("test", SensorReadings, maxsize=1000)


TOPICS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        ["tele/x/SENSOR", "shelly/status/switch:0", "zigbee2mqtt/a", "esp/sensor/w/state", "j/k"]
    ),
)
PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(TOPICS, PAYLOADS), min_size=1, max_size=10))
def test_arbitrary_messages_never_crash_ingest_and_every_bad_one_is_counted(
    messages: list[tuple[str, bytes]],
) -> None:
    ingest, published = _ingest()

    async def feed() -> list[str]:
        for topic, payload in messages:
            await ingest.handle(topic, payload)
        lines = LineMaker()  # what the InfluxDB sink makes of each published event
        return [line for event in published.take() for line in lines(event)]

    out = asyncio.run(feed())
    stats = ingest.stats
    assert stats.received == len(messages)
    # Every message is unmatched, or per matching sensor either decoded or rejected.
    assert stats.unmatched + stats.decoded + stats.rejected >= stats.received
    assert stats.rejected == sum(stats.rejected_by_sensor.values())
    for line in out:  # every numeric field that reached the writer is a finite float
        _, fields, _ = line.rsplit(" ", 2)
        for item in fields.split(","):
            value = item.split("=", 1)[1]
            assert value.startswith('"') or math.isfinite(float(value)), line
