"""What `farmctl report --utilisation` prints: the rows of /api/v1/reports/utilisation as a table,
JSON or CSV. The `report` command (controller/cli/report.py) fetches them and calls `show`."""

from __future__ import annotations

import csv
import json
import sys

import typer
from rich.markup import escape
from rich.table import Table

from controller.cli.common import console

PATH = "/api/v1/reports/utilisation"
# Every field of a row, in the API's order: the CSV's header.
COLUMNS = (
    "key", "period_s", "printing_h", "paused_h", "awaiting_clear_h", "idle_h", "offline_h", "error_h",
    "off_h", "unknown_h", "availability", "performance", "quality", "oee", "utilisation",
    "jobs_completed", "jobs_failed", "jobs_cancelled", "bed_clear_wait_median_s", "bed_clear_wait_p90_s",
)  # fmt: skip


def query_params(since: str | None, until: str | None, group_by: str) -> dict[str, str]:
    """The query of PATH (the API checks the values and answers 422 with its reason)."""
    params = {"group_by": group_by}
    if since:
        params["since"] = since
    if until:
        params["until"] = until
    return params


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _pct(value: object) -> str:
    number = _number(value)
    return "-" if number is None else f"{number * 100:.1f}%"


def _hours(value: object) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.1f}"


def _minutes(value: object) -> str:
    number = _number(value)
    return "-" if number is None else f"{number / 60:.1f}"


def show(rows: list[dict[str, object]], *, as_json: bool, as_csv: bool) -> None:
    """Print the rows: JSON, CSV (every field, empty where null) or a table for a person."""
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if as_csv:
        out = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        out.writeheader()
        out.writerows(rows)
        return
    table = Table(
        "", "printing h", "paused h", "to clear h", "idle h", "offline h", "error h", "unknown h",
        "avail.", "perf.", "quality", "OEE", "util.", "done", "failed", "clear wait min median/p90",
    )  # fmt: skip
    for row in rows:
        table.add_row(
            escape(str(row["key"])),
            *(_hours(row[f"{state}_h"]) for state in ("printing", "paused", "awaiting_clear", "idle")),
            *(_hours(row[f"{state}_h"]) for state in ("offline", "error", "unknown")),
            *(_pct(row[name]) for name in ("availability", "performance", "quality", "oee", "utilisation")),
            str(row["jobs_completed"]),
            str(row["jobs_failed"]),
            f"{_minutes(row['bed_clear_wait_median_s'])}/{_minutes(row['bed_clear_wait_p90_s'])}",
        )
    console().print(table)
