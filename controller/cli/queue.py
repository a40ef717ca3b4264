"""`farmctl queue`: list the queue, add a G-code file, show or cancel one job."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from controller.cli.app import epilog, queue_app
from controller.cli.common import (
    EX_IOERR,
    ApiClient,
    ApiOpt,
    ConfigOpt,
    JsonOpt,
    StateOpt,
    TokenOpt,
    console,
    fail,
    short_time,
)
from controller.cli.upload import LocalFileError, MultipartBody, open_input, upload_progress
from controller.cli.watch import WatchOpt, watch
from controller.jobs import JobState

# The daemon answers an upload only after it has stored and scanned the whole file, which takes
# minutes for hundreds of MB on a Pi; each 1 MiB write may also be slow over Wi-Fi.
_UPLOAD_TIMEOUT = httpx.Timeout(10.0, write=60.0, read=600.0)
_JOB_STYLE = {
    "queued": "yellow",
    "dispatching": "cyan",
    "printing": "cyan",
    "paused": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "dim",
}


def _job_state(job: dict[str, Any]) -> str:
    return f"[{_JOB_STYLE.get(job['state'], 'magenta')}]{job['state']}[/]"


def _note(job: dict[str, Any]) -> str:
    """Why it waits while queued, else why it failed or came back."""
    return escape(job.get("waiting") or job.get("error") or "")


@queue_app.command("add", epilog=epilog("farmctl queue add deploy/demo-files/cube-pla-0.4.gcode --copies 2"))
def queue_add(
    file: Annotated[Path, typer.Argument(help="G-code file to print", show_default=False)],
    copies: Annotated[int | None, typer.Option(help="Prints of it, one job each (default 1)")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first (default 0)")] = None,
    material: Annotated[str | None, typer.Option(help="Required material (default: from the G-code)")] = None,
    nozzle: Annotated[
        float | None, typer.Option(help="Nozzle diameter, mm (default: from the G-code)")
    ] = None,
    printer: Annotated[str | None, typer.Option(help="Only this printer may take it")] = None,
    group: Annotated[str | None, typer.Option(help="Only printers of this group may take it")] = None,
    owner: Annotated[str | None, typer.Option(help="Member it is for (default: the token's name)")] = None,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Queue a G-code file (operator); --json prints the new jobs as a JSON list."""
    given = {
        "copies": copies,
        "priority": priority,
        "material": material,
        "nozzle": nozzle,
        "printer": printer,
        "group": group,
        "owner": owner,
    }
    fields = {name: str(value) for name, value in given.items() if value is not None}
    with open_input(file) as upload:
        client = ApiClient(config, api, token_file)
        body = MultipartBody(fields, upload, file.name)
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.content_length)}
        with upload_progress(show=not json_ and sys.stderr.isatty()) as progress:
            task = progress.add_task(escape(file.name), total=body.file_size)
            try:
                answer = client.request(
                    "POST",
                    "/api/v1/jobs",
                    content=body.chunks(lambda n: progress.advance(task, n)),
                    headers=headers,
                    timeout=_UPLOAD_TIMEOUT,
                )
            except LocalFileError as exc:
                raise fail(str(exc), EX_IOERR) from None
    jobs = answer["jobs"]
    if json_:
        typer.echo(json.dumps(jobs, indent=2))
        return
    table = Table("id", "state", "file", "owner", "material", "nozzle", "printer")
    for job in jobs:
        table.add_row(
            str(job["id"]),
            _job_state(job),
            escape(job["file"]),
            escape(job["owner"]),
            escape(job.get("material") or "any"),
            f"{job['nozzle']:g}" if job.get("nozzle") is not None else "any",
            escape(job.get("required_printer") or job.get("required_group") or "any"),
        )
    console().print(table)


def _list_jobs(client: ApiClient, states: list[JobState] | None, json_: bool) -> None:
    params = {"state": [str(s) for s in states]} if states else None
    jobs = client.get("/api/v1/jobs", params=params)["jobs"]
    if json_:
        typer.echo(json.dumps(jobs, indent=2))
        return
    table = Table(
        "id", "state", "file", "owner", "printer", "prio", "material", "progress", "created", "note"
    )
    for job in jobs:
        progress = job.get("progress")
        table.add_row(
            str(job["id"]),
            _job_state(job),
            escape(job["file"]),
            escape(job["owner"]),
            escape(job.get("printer") or "-"),
            str(job["priority"]),
            escape(job.get("material") or "-"),
            f"{progress:.0f}%" if progress is not None else "-",
            short_time(job.get("created_at")),
            _note(job),
        )
    console().print(table)


@queue_app.callback(invoke_without_command=True)
def queue(
    ctx: typer.Context,
    state: StateOpt = None,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
    watch_s: WatchOpt = None,
) -> None:
    """The job queue; without a command, list it (why a queued job waits is in its note)."""
    if ctx.invoked_subcommand is None:
        client = ApiClient(config, api, token_file)
        watch(lambda: _list_jobs(client, state, json_), watch_s, "farmctl queue")


@queue_app.command("list", epilog=epilog("farmctl queue list --state queued --state printing"))
def queue_list(
    state: StateOpt = None,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
    watch_s: WatchOpt = None,
) -> None:
    """Every job, oldest first; --json prints the API's list."""
    client = ApiClient(config, api, token_file)
    watch(lambda: _list_jobs(client, state, json_), watch_s, "farmctl queue list")


_SHOWN = (
    ("file", "file"),
    ("owner", "owner"),
    ("printer", "printer"),
    ("priority", "priority"),
    ("material", "material"),
    ("nozzle", "nozzle"),
    ("required_printer", "only printer"),
    ("required_group", "only group"),
    ("size_mm", "size mm"),
    ("progress", "progress %"),
    ("estimated_s", "estimate s"),
    ("filament_g", "filament g"),
    ("filament_est_g", "estimate g"),
    ("energy_kwh", "energy kWh"),
    ("heatup_kwh", "heat-up kWh"),
    ("energy_gap_s", "reading gap s"),
    ("waste_g", "waste g"),
    ("waste_kwh", "waste kWh"),
    ("cost", "cost"),
    ("co2_g", "CO2 g"),
    ("attempts", "attempts"),
    ("created_at", "created"),
    ("started_at", "started"),
    ("finished_at", "finished"),
    ("waiting", "waiting"),
    ("error", "error"),
)


@queue_app.command("show", epilog=epilog("farmctl queue show 3"))
def queue_show(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="Job to show")],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """One job: its fields, why it waits, and every state change it went through."""
    client = ApiClient(config, api, token_file)
    job = client.get(f"/api/v1/jobs/{job_id}")
    events = client.get(f"/api/v1/jobs/{job_id}/events")["events"]
    if json_:
        typer.echo(json.dumps({**job, "events": events}, indent=2))
        return
    out = console()
    out.print(f"job {job['id']}: {_job_state(job)}")
    for key, label in _SHOWN:
        value = job.get(key)
        if value is None or value == "":
            continue
        if key.endswith("_at"):
            value = short_time(value)
        elif isinstance(value, list):
            value = " x ".join(f"{v:g}" for v in value)
        elif key == "progress":
            value = f"{value:.0f}"
        elif isinstance(value, float):
            value = f"{value:g}"
        out.print(f"  {label:<13} {escape(str(value))}")
    table = Table("when", "state", "printer", "detail", title="events")
    for event in events:
        table.add_row(
            short_time(event["at"]),
            _job_state(event),
            escape(event.get("printer") or "-"),
            escape(event.get("detail") or ""),
        )
    out.print(table)


@queue_app.command("cancel", epilog=epilog("farmctl queue cancel 3"))
def queue_cancel(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="Job to cancel")],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Cancel a queued job, or stop it on its printer (operator)."""
    job = ApiClient(config, api, token_file).post(f"/api/v1/jobs/{job_id}/cancel")
    if json_:
        typer.echo(json.dumps(job, indent=2))
        return
    typer.echo(f"job {job['id']} ({job['file']}): {job['state']}")
