"""The farm overview, one printer, and the jobs and members dashboards."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash

from dashboards.influxql import InfluxQL
from dashboards.parts import (
    FINISHED,
    PRINTERS,
    JobAnnotations,
    bars,
    board,
    gauges,
    group_variable,
    math,
    member_variable,
    number,
    printer_variable,
    rows,
    series,
    states,
    to_printer,
)

# Time in a state, from the printer_state points: each carries how long the state before it lasted.
_SPELLS = (
    'SELECT sum("duration_s") FROM "printer_state" WHERE "previous" {} AND {} AND $timeFilter'
    ' GROUP BY "printer"'
)
# Planned time as in controller/accounting/oee.py: what was observed and not planned off.
PLANNED = _SPELLS.format("=~ /^(printing|paused|awaiting_clear|idle|offline|error)$/", PRINTERS)
AVAILABLE = _SPELLS.format("=~ /^(printing|paused|awaiting_clear|idle)$/", PRINTERS)
PRINTING = _SPELLS.format("= 'printing'", PRINTERS)
_JOBS = 'SELECT count("job_id") FROM "job" WHERE "outcome" {} AND {} AND $timeFilter GROUP BY "printer"'
COMPLETED = _JOBS.format("= 'completed'", PRINTERS)
JUDGED = _JOBS.format("=~ /^(completed|failed)$/", PRINTERS)  # cancels are the operator's, not the printer's
# Performance's inputs: the slicer's estimate and the actual time of the completed prints that have both.
_TIMED = (
    'SELECT sum("{}") FROM "job" WHERE "outcome" = \'completed\' AND "estimated_s" > 0 AND "duration_s" > 0'
    f' AND {PRINTERS} AND $timeFilter GROUP BY "printer"'
)
ESTIMATED = _TIMED.format("estimated_s")
ACTUAL = _TIMED.format("duration_s")
# Expressions have no min(): a comparison is 1 or 0, so this is min($A / $B, 1) for B > 0.
PERFORMANCE = "({a} / {b} * ({a} <= {b}) + ({a} > {b}))"

TODAY = "now/d"


def overview() -> dash.Dashboard:
    """What the farm is doing now and how well it is used."""
    counts = InfluxQL(
        'SELECT last("printing") AS "printing", last("idle") AS "idle", last("awaiting_clear") AS'
        ' "awaiting clear", last("offline") AS "offline" FROM "farm" WHERE $timeFilter'
    )
    ended = f"{FINISHED} AND {PRINTERS} AND $timeFilter"
    board_ = (
        board("farmctl-overview", "Farm overview", "Printer states, queue, utilisation, today's prints.")
        .with_variable(group_variable())
        .with_variable(printer_variable())
        .annotation(JobAnnotations())
        .with_panel(number(1, "Printers now", "Printers by state, the whole farm.", counts, unit="none", w=8))
        .with_panel(
            number(
                2,
                "Queue",
                "Jobs waiting.",
                InfluxQL('SELECT last("queued") FROM "farm" WHERE $timeFilter'),
                unit="none",
            )
        )
        .with_panel(
            number(
                3,
                "Prints today",
                "Jobs completed today.",
                InfluxQL(
                    'SELECT count("job_id") AS "prints" FROM "job"'
                    f" WHERE \"outcome\" = 'completed' AND {PRINTERS} AND $timeFilter"
                ),
                unit="none",
            ).time_from(TODAY)
        )
        .with_panel(
            number(
                4,
                "Energy today",
                "Measured kWh of the jobs finished today.",
                InfluxQL(f'SELECT sum("energy_kwh") AS "kWh" FROM "job" WHERE {ended}'),
                unit="kwatth",
            ).time_from(TODAY)
        )
        .with_panel(
            number(
                5,
                "Cost today",
                "Cost of the jobs finished today, in the currency of [costs].",
                InfluxQL(f'SELECT sum("cost") AS "cost" FROM "job" WHERE {ended}'),
                unit="none",
            ).time_from(TODAY)
        )
        .with_panel(
            states(
                6,
                "Printer states",
                "Each printer's state, sampled every [influx] printer_interval.",
                InfluxQL(
                    f'SELECT last("state") FROM "printer" WHERE {PRINTERS} AND $timeFilter'
                    ' GROUP BY time($__interval), "printer" fill(none)'
                ).alias("$tag_printer"),
            ).data_links(to_printer())
        )
        .with_panel(
            series(
                7,
                "Queue length",
                "Jobs queued and printers printing.",
                InfluxQL(
                    'SELECT max("queued") AS "queued", max("printing") AS "printing" FROM "farm"'
                    " WHERE $timeFilter GROUP BY time($__interval) fill(none)"
                ),
                unit="none",
                w=8,
            )
        )
        .with_panel(
            rows(
                8,
                "Bed-clear wait",
                "From a finished print until the operator cleared the bed (awaiting_clear to idle).",
                InfluxQL(
                    'SELECT median("duration_s") AS "median s", percentile("duration_s", 90) AS "p90 s",'
                    ' max("duration_s") AS "longest s", count("duration_s") AS "waits" FROM "printer_state"'
                    f" WHERE \"previous\" = 'awaiting_clear' AND \"state\" = 'idle' AND {PRINTERS}"
                    ' AND $timeFilter GROUP BY "printer"'
                ),
                w=8,
                h=8,
            )
        )
    )
    # (id, title, what it says, its queries A, B, …, the expression over them); ids stay as they were.
    ratios = (
        (
            9,
            "Utilisation",
            "Printing, of the recorded time in the range (state spells that ended in it).",
            [PRINTING, PLANNED],
            "$A / $B",
        ),
        (
            10,
            "Availability",
            "Printer time not offline or in error, of the recorded time.",
            [AVAILABLE, PLANNED],
            "$A / $B",
        ),
        (
            13,
            "Performance",
            "The slicer's estimated time of the completed prints over the time they took"
            " (heat-up and pauses included), at most 1.",
            [ESTIMATED, ACTUAL],
            PERFORMANCE.format(a="$A", b="$B"),
        ),
        (
            11,
            "Quality",
            "Completed of completed and failed jobs (cancels left out).",
            [COMPLETED, JUDGED],
            "$A / $B",
        ),
        (
            12,
            "OEE",
            "Availability x performance x quality, as in `farmctl report --utilisation`.",
            [AVAILABLE, PLANNED, ESTIMATED, ACTUAL, COMPLETED, JUDGED],
            "$A / $B * " + PERFORMANCE.format(a="$C", b="$D") + " * $E / $F",
        ),
    )
    for pid, title, text, queries, formula in ratios:
        inputs = [InfluxQL(q, chr(ord("A") + n)).hidden() for n, q in enumerate(queries)]
        # Utilisation shares a row with the queue and the bed-clear waits; the OEE factors make the next.
        w = 8 if pid == 9 else 6
        panel = gauges(
            pid, f"{title} per printer", text, *inputs, math("R", formula), unit="percentunit", w=w
        )
        panel = panel.max(1).display_name("${__field.labels.printer}").data_links(to_printer())
        board_ = board_.with_panel(panel)
    return board_


def printer() -> dash.Dashboard:
    """One printer: temperatures, progress, power, its state timeline and its jobs."""
    one = f"{PRINTERS} AND $timeFilter"
    return (
        board("farmctl-printer", "Printer", "One printer: temperatures, progress, power, states, jobs.")
        .with_variable(group_variable())
        .with_variable(printer_variable(multi=False))
        .annotation(JobAnnotations())
        .with_panel(
            series(
                1,
                "Temperatures",
                "Hotend and bed, actual and target.",
                InfluxQL(
                    'SELECT mean("tool_actual") AS "tool", mean("tool_target") AS "tool target",'
                    ' mean("bed_actual") AS "bed", mean("bed_target") AS "bed target" FROM "printer"'
                    f" WHERE {one} GROUP BY time($__interval) fill(none)"
                ),
                unit="celsius",
            )
        )
        .with_panel(
            series(
                2,
                "Progress",
                "Progress of the print, as OctoPrint reports it.",
                InfluxQL(
                    f'SELECT last("progress") AS "progress" FROM "printer" WHERE {one}'
                    " GROUP BY time($__interval) fill(none)"
                ),
                unit="percent",
            )
        )
        .with_panel(
            series(
                3,
                "Power",
                "All plugs of the printer together (printer, enclosure, dryer).",
                InfluxQL(
                    'SELECT sum("w") AS "power" FROM (SELECT mean("power_w") AS "w" FROM "power"'
                    f' WHERE {one} GROUP BY time($__interval), "sensor" fill(none))'
                    " WHERE $timeFilter GROUP BY time($__interval) fill(none)"
                ),
                unit="watt",
            )
        )
        .with_panel(
            states(
                4,
                "State timeline",
                "Each change of the printer's farm state (printer_state).",
                InfluxQL(f'SELECT "state" FROM "printer_state" WHERE {one} GROUP BY "printer"').alias(
                    "$tag_printer"
                ),
                w=12,
            )
        )
        .with_panel(
            rows(
                5,
                "Its jobs",
                "Jobs that ended on this printer, newest first.",
                InfluxQL(
                    'SELECT "job_id", "owner", "material", "outcome", "duration_s", "energy_kwh",'
                    f' "filament_g", "cost" FROM "job" WHERE {FINISHED} AND {one} ORDER BY time DESC'
                ),
            )
        )
    )


def jobs() -> dash.Dashboard:
    """The job history, outcomes over time and each member's usage."""
    mine = f'{FINISHED} AND {PRINTERS} AND "owner" =~ /^$member$/ AND $timeFilter'
    usage = (
        'SELECT count("job_id") AS "jobs", sum("duration_s") / 3600 AS "print hours", sum("filament_g") AS'
        ' "filament g", sum("energy_kwh") AS "kWh", sum("cost") AS "cost", sum("co2_g") AS "CO2 g"'
        f' FROM "job" WHERE {mine} GROUP BY "owner"'
    )
    return (
        board("farmctl-jobs", "Jobs and members", "Job history, outcomes and each member's usage.")
        .with_variable(group_variable())
        .with_variable(printer_variable())
        .with_variable(member_variable())
        .annotation(JobAnnotations())
        .with_panel(
            rows(
                1,
                "Job history",
                "Every job that ended: outcome, duration, measured kWh and grams, cost.",
                InfluxQL(
                    'SELECT "job_id", "printer", "owner", "material", "outcome", "duration_s", "energy_kwh",'
                    f' "filament_g", "cost", "co2_g" FROM "job" WHERE {mine} ORDER BY time DESC LIMIT 1000'
                ),
            )
        )
        .with_panel(
            bars(
                2,
                "Outcomes over time",
                "Jobs ended per interval by outcome.",
                InfluxQL(
                    f'SELECT count("job_id") FROM "job" WHERE {mine}'
                    ' GROUP BY time($__interval), "outcome" fill(none)'
                ).alias("$tag_outcome"),
                unit="none",
            )
        )
        .with_panel(
            rows(
                3, "Usage per member this month", "Calendar month so far (UTC).", InfluxQL(usage), w=12, h=8
            ).time_from("now/M")
        )
        .with_panel(
            rows(
                4,
                "Usage per member in the time range",
                "Pick a month in the time picker.",
                InfluxQL(usage),
                w=12,
                h=8,
            )
        )
    )
