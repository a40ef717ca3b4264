"""The part of farmctl's InfluxDB schema the dashboards rely on (DESIGN.md's schema, as the daemon writes
it today). tests/test_dashboards.py checks it against what a real farm run wrote, and that the dashboards
name nothing else; docs/grafana.md shows it as a table made from here (`python -m dashboards.build`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """One measurement: when a point is written, its tags and its fields."""

    written: str
    tags: tuple[str, ...]
    fields: tuple[str, ...]


SCHEMA: dict[str, Measurement] = {
    "printer": Measurement(
        "every [influx] printer_interval, per printer (controller/telemetry/farm.py)",
        ("printer", "group"),
        ("state", "progress", "tool_actual", "tool_target", "bed_actual", "bed_target"),
    ),
    "printer_state": Measurement(
        "at each change of a printer's farm state; duration_s is how long `previous` lasted"
        " (controller/accounting/timeline.py)",
        ("printer", "group"),
        ("state", "previous", "duration_s"),
    ),
    "farm": Measurement(
        "every printer_interval: printers by state and the queue",
        (),
        ("queued", "printing", "awaiting_clear", "idle", "offline"),
    ),
    "job": Measurement(
        "at each job state change (`outcome` is the new state); an end (completed, failed, cancelled) carries"
        " the slicer's estimated_s and, once the accountant has them, the measured figures of that attempt",
        ("printer", "owner", "material", "outcome"),
        (
            "job_id",
            "state",
            "duration_s",
            "estimated_s",
            "energy_kwh",
            "heatup_kwh",
            "filament_g",
            "filament_est_g",
            "waste_g",
            "waste_kwh",
            "cost",
            "co2_g",
        ),
    ),
    "power": Measurement(
        "each metering plug reading ([[sensors]] tasmota, shelly, zigbee2mqtt, esphome)",
        ("sensor", "printer"),
        ("power_w", "energy_kwh"),
    ),
    "material": Measurement(
        "each spool scale reading ([[sensors]] esphome kind weight)", ("sensor", "printer"), ("weight_g",)
    ),
    "environment": Measurement(
        "each temperature/humidity reading; `location` from [[sensors]] location",
        ("sensor", "location"),
        ("temperature_c", "humidity_pct"),
    ),
}

BEGIN = "<!-- schema: made by python -m dashboards.build -->"
END = "<!-- schema end -->"


def table() -> str:
    """SCHEMA as a Markdown table, between the markers docs/grafana.md holds it in."""
    lines = [BEGIN, "| measurement | tags | fields | written |", "|---|---|---|---|"]
    for name, m in SCHEMA.items():
        tags = ", ".join(m.tags) or "—"
        lines.append(f"| `{name}` | {tags} | {', '.join(m.fields)} | {m.written} |")
    return "\n".join([*lines, END])


def with_table(doc: str) -> str:
    """`doc` with the text between the markers replaced by the table; ValueError without the markers."""
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the schema markers are missing: {BEGIN} … {END}")
    return doc[:start] + table() + doc[end + len(END) :]
