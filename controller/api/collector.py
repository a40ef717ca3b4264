"""What `/metrics` shows: a prometheus_client collector over the daemon's own counters and state.

The values live where they are counted (the ingest's, writer's and sink's stats, the fleet, the store,
the event feed's subscriptions); the collector reads them at each scrape instead of keeping a second
copy in prometheus_client's metric objects. Each app has its own registry, so two daemons (or two
tests) in one process never share one, and the library's process metrics stay out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.fleet.coordinator import Fleet
from controller.fleet.state import PrinterState
from controller.jobs import JobState
from controller.store import AsyncStore
from controller.telemetry.ingest import MqttIngest
from controller.telemetry.sink import InfluxSink
from controller.telemetry.writer import TelemetryWriter

PREFIX = "farmctl_"
# The classic text format generate_latest writes: every Prometheus server (and Telegraf's prometheus
# input) reads it. Spelled out: the library's name for it is recent.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class MetricSources:
    """What /metrics reads; ingest, writer and sink are None when their config section is absent."""

    fleet: Fleet
    store: AsyncStore
    ingest: MqttIngest | None = None
    writer: TelemetryWriter | None = None
    sink: InfluxSink | None = None


def _counter(
    name: str, help_text: str, value: float | None = None, labels: list[str] | None = None
) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, help_text, value=value, labels=labels)


def _gauge(
    name: str, help_text: str, value: float | None = None, labels: list[str] | None = None
) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, help_text, value=value, labels=labels)


class FarmCollector(Collector):
    """Yields every farmctl_ metric from `sources`; job counts are those of the last `refresh()`."""

    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources
        self.job_counts: dict[JobState, int] = {}

    async def refresh(self) -> None:
        """Read what needs the store (off the event loop, as every store call is)."""
        store = self.sources.store
        self.job_counts = await store.call(store.sync.count_jobs)

    def collect(self) -> Iterator[Metric]:
        yield from self._ingest()
        yield from self._writer()
        states = _gauge("printer_state", "1 for each printer's current state", labels=["printer", "state"])
        for name, coordinator in self.sources.fleet.coordinators.items():
            for state in PrinterState:
                states.add_metric([name, state], float(coordinator.status.state is state))
        yield states
        jobs = _gauge("jobs", "Jobs by state", labels=["state"])
        for job_state in JobState:
            jobs.add_metric([job_state], float(self.job_counts.get(job_state, 0)))
        yield jobs
        if self.sources.sink is not None:
            refused = float(self.sources.sink.stats.refused)
            yield _counter("sensor_readings_refused_total", "Readings no point could be made of", refused)
        yield from self._events()

    def _ingest(self) -> Iterator[Metric]:
        if self.sources.ingest is None:
            return
        s = self.sources.ingest.stats
        yield _gauge("mqtt_connected", "Broker connection: up (1) or down (0)", float(s.connected))
        yield _counter("mqtt_messages_received_total", "MQTT messages received", s.received)
        yield _counter("mqtt_messages_decoded_total", "Messages decoded by a profile", s.decoded)
        rejected = _counter(
            "mqtt_messages_rejected_total", "Messages refused as malformed", labels=["sensor"]
        )
        for sensor, count in sorted(s.rejected_by_sensor.items()):
            rejected.add_metric([sensor], float(count))
        yield rejected
        yield _counter("mqtt_messages_unmatched_total", "Messages for no sensor", s.unmatched)
        yield _counter("mqtt_messages_dropped_total", "QoS 0 messages dropped, queue full", s.dropped)
        if s.broker_dropped is not None:
            yield _counter(
                "mqtt_broker_messages_dropped_total",
                "Messages the broker dropped since it started, all clients: a client's queue was full",
                s.broker_dropped,
            )
        yield _counter("sensor_points_total", "Points decoded from sensor messages", s.readings)

    def _writer(self) -> Iterator[Metric]:
        writer = self.sources.writer
        if writer is None:
            return
        w = writer.stats
        yield _counter("points_written_total", "Points written to the database", w.written)
        yield _counter("points_spooled_total", "Points put in the disk spool", w.spooled)
        dropped = _counter(
            "points_dropped_total", "Points lost: refused by the database or spool full", labels=["reason"]
        )
        dropped.add_metric(["rejected"], float(w.rejected))
        dropped.add_metric(["spool_full"], float(writer.spool.dropped))
        yield dropped
        yield _gauge("spool_points", "Points waiting in the disk spool", writer.spool.lines)
        yield _gauge("spool_bytes", "Size of the disk spool", writer.spool.size)

    def _events(self) -> Iterator[Metric]:
        feed = self.sources.store.feed
        if feed is None:
            return
        subs = feed.subscriptions
        dropped = _counter(
            "events_dropped_total", "Events a subscriber fell too far behind for", labels=["subscriber"]
        )
        waiting = _gauge("events_waiting", "Events queued for each subscriber", labels=["subscriber"])
        for sub in subs:
            dropped.add_metric([sub.name], float(sub.dropped))
            waiting.add_metric([sub.name], float(len(sub)))
        yield dropped
        yield waiting


class FarmMetrics:
    """One app's registry with its collector; `exposition()` is the body of a scrape."""

    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources
        self.collector = FarmCollector(sources)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    async def exposition(self) -> bytes:
        await self.collector.refresh()
        return generate_latest(self.registry)
