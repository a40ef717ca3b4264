"""`farmctl printers`, `farmctl clear` and `farmctl load`: the fleet's live state (once or `--watch`), the
bed-clear confirmation and the material loaded on a printer. `printers maintenance`/`back` are in ops.py."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from controller.cli.app import app, epilog
from controller.cli.common import ApiClient, ApiOpt, ConfigOpt, JsonOpt, TokenOpt, ago, console, segment
from controller.cli.watch import WatchOpt, watch

printers_app = typer.Typer(
    help="Printers: list them (the default), take one out of service and back.",
    epilog=epilog("farmctl printers --watch 5"),
    rich_markup_mode=None,
)
app.add_typer(printers_app, name="printers")

_STATE_STYLE = {"idle": "green", "printing": "cyan", "paused": "yellow", "error": "red", "offline": "dim"}


def _temp(temps: dict[str, Any], key: str) -> str:
    t = temps.get(key)
    if not t or t.get("actual") is None:
        return "-"
    target = t.get("target")
    return f"{t['actual']:.0f}/{target:.0f}" if target else f"{t['actual']:.0f}"


def _bed(printer: dict[str, Any]) -> str:
    if printer.get("maintenance"):
        return f"[magenta]maintenance: {escape(printer['maintenance']['reason'])}[/]"
    if printer["state"] in ("printing", "paused"):
        return "in use"
    return "clear" if printer.get("bed_clear") else "[yellow]to clear[/]"


@printers_app.callback(invoke_without_command=True)
def printers(
    ctx: typer.Context,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
    watch_s: WatchOpt = None,
) -> None:
    """Live state of every printer: state, job, temperatures, nozzle, materials and its bed (or why it
    is out of service)."""
    if ctx.invoked_subcommand is None:
        client = ApiClient(config, api, token_file)
        watch(lambda: _show(client, json_), watch_s, "farmctl printers")


def _show(client: ApiClient, json_: bool) -> None:
    rows = client.get("/api/v1/printers")
    if json_:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "printer", "state", "job", "progress", "tool °C", "bed °C", "nozzle", "materials", "bed", "group",
        "last seen",
    )  # fmt: skip
    for p in rows:
        style = _STATE_STYLE.get(p["state"], "magenta")
        progress = f"{p['progress']:.0f}%" if p.get("progress") is not None else "-"
        job = str(p["job_id"]) if p.get("job_id") is not None else escape(p.get("file") or "-")
        table.add_row(
            escape(p["name"]),
            f"[{style}]{p['state']}[/]",
            job,
            progress,
            _temp(p["temperatures"], "tool0"),
            _temp(p["temperatures"], "bed"),
            f"{p['nozzle']:g}",
            escape(", ".join(p["materials"])),
            _bed(p),
            escape(p["group"]),
            ago(p.get("last_seen")),
        )
    console().print(table)


@app.command(epilog=epilog("farmctl clear demo-1"))
def clear(
    printer: Annotated[str, typer.Argument(help="Printer whose bed an operator has cleared")],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Confirm a printer's bed is clear so the next job may start there (operator)."""
    answer = ApiClient(config, api, token_file).post(f"/api/v1/printers/{segment(printer)}/clear")
    if json_:
        typer.echo(json.dumps(answer, indent=2))
        return
    typer.echo(f"{answer['name']}: {answer['state']}")


@app.command(epilog=epilog("farmctl load mk4-1 PETG"))
def load(
    printer: Annotated[str, typer.Argument(help="Printer whose spool changed")],
    materials: Annotated[
        list[str],
        typer.Argument(help="What is loaded on it now: one material, or each spool of a multi-material unit"),
    ],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Record the material(s) loaded on a printer now; queued jobs are matched against them (operator)."""
    body = json.dumps({"materials": materials}).encode()
    answer = ApiClient(config, api, token_file).request(
        "POST",
        f"/api/v1/printers/{segment(printer)}/material",
        content=iter([body]),
        headers={"Content-Type": "application/json"},
    )
    if json_:
        typer.echo(json.dumps(answer, indent=2))
        return
    typer.echo(f"{answer['name']}: {answer['state']}, loaded {'/'.join(answer['materials'])}")
