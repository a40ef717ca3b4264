"""The energy, material and environment dashboards."""

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
    location_variable,
    material_variable,
    math,
    printer_variable,
    rows,
    series,
    to_printer,
)

# Watts of a printer: the mean of each of its plugs per interval, summed (a printer may have several).
_WATTS = (
    'SELECT sum("w") FROM (SELECT mean("power_w") AS "w" FROM "power" WHERE {} AND $timeFilter'
    ' GROUP BY time($__interval), "printer", "sensor" fill(none)) WHERE $timeFilter'
    " GROUP BY time($__interval){} fill(none)"
)
# kWh each printer's plugs drew in the range, from their power (a counter's resets do not matter).
DRAWN = (
    'SELECT sum("kwh") FROM (SELECT integral("power_w", 1h) / 1000 AS "kwh" FROM "power"'
    f' WHERE {PRINTERS} AND $timeFilter GROUP BY "printer", "sensor") GROUP BY "printer"'
)
PRINTED = (
    f'SELECT sum("energy_kwh") FROM "job" WHERE {FINISHED} AND {PRINTERS} AND $timeFilter GROUP BY "printer"'
)


def _per_day(field: str, name: str) -> InfluxQL:
    return InfluxQL(
        f'SELECT sum("{field}") AS "{name}" FROM "job" WHERE {FINISHED} AND {PRINTERS} AND $timeFilter'
        " GROUP BY time(1d) fill(none)"
    )


def energy() -> dash.Dashboard:
    """Watts now, kWh, cost and CO2 per job and per day, idle against printing energy, waste."""
    return (
        board("farmctl-energy", "Energy", "Power per printer and farm; kWh, cost, CO2 and waste of the jobs.")
        .with_variable(group_variable())
        .with_variable(printer_variable())
        .annotation(JobAnnotations())
        .with_panel(
            series(
                1,
                "Power per printer",
                "All plugs of a printer together.",
                InfluxQL(_WATTS.format(PRINTERS, ', "printer"')).alias("$tag_printer"),
                unit="watt",
            ).data_links(to_printer())
        )
        .with_panel(
            series(
                2,
                "Farm power",
                "The chosen printers' plugs together.",
                InfluxQL(_WATTS.format(PRINTERS, "")),
                unit="watt",
            )
        )
        .with_panel(
            rows(
                3,
                "kWh and cost per job",
                "Measured energy of each job that ended (heat-up included), its cost and CO2.",
                InfluxQL(
                    'SELECT "job_id", "printer", "owner", "outcome", "energy_kwh", "heatup_kwh", "cost",'
                    f' "co2_g" FROM "job" WHERE {FINISHED} AND {PRINTERS} AND "energy_kwh" >= 0'
                    " AND $timeFilter"
                    " ORDER BY time DESC"
                ),
            )
        )
        .with_panel(
            bars(
                4,
                "kWh per day",
                "Measured kWh of the jobs ended each day.",
                _per_day("energy_kwh", "kWh"),
                unit="kwatth",
            )
        )
        .with_panel(
            bars(5, "Cost per day", "In the currency of [costs].", _per_day("cost", "cost"), unit="none")
        )
        .with_panel(
            gauges(
                6,
                "Printing and not printing energy per printer",
                "Printing: the measured kWh of the jobs that ended in the range. Not printing: what the"
                " printer's plugs drew in the range (integrated power) minus that.",
                InfluxQL(DRAWN, "A").hidden(),
                InfluxQL(PRINTED, "B").hidden(),
                math("printing", "$B"),
                math("not_printing", "$A - $B"),
                unit="kwatth",
            ).display_name("${__field.labels.printer} ${__field.name}")
        )
        .with_panel(
            bars(
                7,
                "Waste kWh per day",
                "Energy of failed and cancelled prints.",
                _per_day("waste_kwh", "waste kWh"),
                unit="kwatth",
            )
        )
        .with_panel(
            bars(
                8,
                "CO2 per day",
                "Grams of CO2 of the jobs ended each day.",
                _per_day("co2_g", "CO2 g"),
                unit="massg",
            )
        )
    )


def material() -> dash.Dashboard:
    """Grams per job (estimate and measured), spool weights, drift and waste per material."""
    chosen = f'{PRINTERS} AND "material" =~ /^$material$/ AND $timeFilter'
    return (
        board("farmctl-material", "Material", "Filament per job, spool weights, drift, waste per material.")
        .with_variable(group_variable())
        .with_variable(printer_variable())
        .with_variable(material_variable())
        .annotation(JobAnnotations())
        .with_panel(
            rows(
                1,
                "Grams per job",
                "The slicer's estimate and the grams taken (weighed where the printer has a scale).",
                InfluxQL(
                    'SELECT "job_id", "printer", "material", "outcome", "filament_est_g", "filament_g",'
                    f' "filament_g" - "filament_est_g" AS "drift g" FROM "job" WHERE {FINISHED} AND {chosen}'
                    " ORDER BY time DESC"
                ),
            )
        )
        .with_panel(
            series(
                2,
                "Spool weight",
                "What each scale weighs (spool and filament).",
                InfluxQL(
                    f'SELECT mean("weight_g") FROM "material" WHERE {PRINTERS} AND $timeFilter'
                    ' GROUP BY time($__interval), "printer", "sensor" fill(none)'
                ).alias("$tag_printer $tag_sensor"),
                unit="massg",
            )
        )
        .with_panel(
            series(
                3,
                "Drift per job",
                "Grams taken against the estimate, in percent of the estimate.",
                InfluxQL(
                    'SELECT ("filament_g" - "filament_est_g") / "filament_est_g" * 100 AS "drift" FROM "job"'
                    f' WHERE "outcome" = \'completed\' AND "filament_est_g" > 0 AND {chosen}'
                    ' GROUP BY "printer"'
                ).alias("$tag_printer"),
                unit="percent",
            )
        )
        .with_panel(
            gauges(
                4,
                "Waste grams per material",
                "Filament of failed and cancelled prints.",
                InfluxQL(
                    f'SELECT sum("waste_g") FROM "job" WHERE {FINISHED} AND {chosen} GROUP BY "material"'
                ).alias("$tag_material"),
                unit="massg",
            )
        )
        .with_panel(
            bars(
                5,
                "Grams per day and material",
                "Filament of the completed jobs each day.",
                InfluxQL(
                    f'SELECT sum("filament_g") FROM "job" WHERE "outcome" = \'completed\' AND {chosen}'
                    ' GROUP BY time(1d), "material" fill(none)'
                ).alias("$tag_material"),
                unit="massg",
                w=24,
            )
        )
    )


def environment() -> dash.Dashboard:
    """Enclosure and room temperature and humidity per location."""
    where = '"location" =~ /^$location$/ AND $timeFilter GROUP BY time($__interval), "location" fill(none)'
    return (
        board("farmctl-environment", "Environment", "Temperature and humidity per location.")
        .with_variable(location_variable())
        .annotation(JobAnnotations(printers=False))
        .with_panel(
            series(
                1,
                "Temperature",
                "Mean per location ([[sensors]] location).",
                InfluxQL(f'SELECT mean("temperature_c") FROM "environment" WHERE {where}').alias(
                    "$tag_location"
                ),
                unit="celsius",
            )
        )
        .with_panel(
            series(
                2,
                "Humidity",
                "Relative humidity per location.",
                InfluxQL(f'SELECT mean("humidity_pct") FROM "environment" WHERE {where}').alias(
                    "$tag_location"
                ),
                unit="humidity",
            )
        )
    )
