"""`/metrics`: Prometheus text exposition of ingest, writer, spool, queue and printer state."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from controller.api.auth import require
from controller.config import Role
from controller.fleet import Fleet
from controller.jobs import JobState
from controller.printers import PrinterState
from controller.store import AsyncStore
from controller.telemetry.ingest import MqttIngest
from controller.telemetry.sink import InfluxSink
from controller.telemetry.writer import TelemetryWriter

router = APIRouter(tags=["metrics"])


@dataclass
class MetricSources:
    """What /metrics reads; ingest and writer are None when their config section is absent."""

    fleet: Fleet
    store: AsyncStore
    ingest: MqttIngest | None = None
    writer: TelemetryWriter | None = None
    sink: InfluxSink | None = None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
    out.append(f"# HELP farmctl_{name} {help_text}")
    out.append(f"# TYPE farmctl_{name} {kind}")
    out.extend(f"farmctl_{name}{labels} {value:g}" for labels, value in samples)


async def render(sources: MetricSources) -> str:
    out: list[str] = []
    ingest, writer = sources.ingest, sources.writer
    if ingest is not None:
        s = ingest.stats
        _metric(
            out,
            "mqtt_connected",
            "gauge",
            "Broker connection: up (1) or down (0)",
            [("", float(s.connected))],
        )
        _metric(out, "mqtt_messages_received_total", "counter", "MQTT messages received", [("", s.received)])
        _metric(
            out, "mqtt_messages_decoded_total", "counter", "Messages decoded by a profile", [("", s.decoded)]
        )
        rejected = [(f'{{sensor="{_label(k)}"}}', float(v)) for k, v in sorted(s.rejected_by_sensor.items())]
        _metric(out, "mqtt_messages_rejected_total", "counter", "Messages refused as malformed", rejected)
        _metric(
            out, "mqtt_messages_unmatched_total", "counter", "Messages for no sensor", [("", s.unmatched)]
        )
        _metric(
            out,
            "mqtt_messages_dropped_total",
            "counter",
            "QoS 0 messages dropped, queue full",
            [("", s.dropped)],
        )
        if s.broker_dropped is not None:
            _metric(
                out,
                "mqtt_broker_messages_dropped_total",
                "counter",
                "Messages the broker dropped since it started, all clients: a client's queue was full",
                [("", s.broker_dropped)],
            )
        _metric(
            out, "sensor_points_total", "counter", "Points decoded from sensor messages", [("", s.readings)]
        )
    if writer is not None:
        w = writer.stats
        _metric(out, "points_written_total", "counter", "Points written to the database", [("", w.written)])
        _metric(out, "points_spooled_total", "counter", "Points put in the disk spool", [("", w.spooled)])
        dropped = [
            ('{reason="rejected"}', float(w.rejected)),
            ('{reason="spool_full"}', float(writer.spool.dropped)),
        ]
        _metric(
            out,
            "points_dropped_total",
            "counter",
            "Points lost: refused by the database or spool full",
            dropped,
        )
        _metric(out, "spool_points", "gauge", "Points waiting in the disk spool", [("", writer.spool.lines)])
        _metric(out, "spool_bytes", "gauge", "Size of the disk spool", [("", writer.spool.size)])
    states = [
        (f'{{printer="{_label(name)}",state="{state}"}}', float(c.status.state is state))
        for name, c in sources.fleet.coordinators.items()
        for state in PrinterState
    ]
    _metric(out, "printer_state", "gauge", "1 for each printer's current state", states)
    counts = await sources.store.call(sources.store.sync.count_jobs)
    jobs = [(f'{{state="{state}"}}', float(counts.get(state, 0))) for state in JobState]
    _metric(out, "jobs", "gauge", "Jobs by state", jobs)
    if sources.sink is not None:
        refused = [("", float(sources.sink.stats.refused))]
        _metric(
            out, "sensor_readings_refused_total", "counter", "Readings no point could be made of", refused
        )
    feed = sources.store.feed
    if feed is not None:
        subs = feed.subscriptions
        dropped = [(f'{{subscriber="{_label(sub.name)}"}}', float(sub.dropped)) for sub in subs]
        _metric(
            out, "events_dropped_total", "counter", "Events a subscriber fell too far behind for", dropped
        )
        waiting = [(f'{{subscriber="{_label(sub.name)}"}}', float(len(sub))) for sub in subs]
        _metric(out, "events_waiting", "gauge", "Events queued for each subscriber", waiting)
    return "\n".join(out) + "\n"


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(require(Role.VIEWER))])
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format. Role: viewer (scrape with a bearer token)."""
    sources: MetricSources = request.app.state.metrics
    return PlainTextResponse(await render(sources), media_type="text/plain; version=0.0.4")
