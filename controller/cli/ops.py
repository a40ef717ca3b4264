"""Day-to-day operations: `farmctl pause`/`resume` a print, `farmctl queue move`/`reprint` a job,
`farmctl printers maintenance`/`back`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from controller.cli.app import app, epilog, queue_app
from controller.cli.common import ApiClient, ApiOpt, ConfigOpt, JsonOpt, TokenOpt, segment
from controller.cli.printers import printers_app
from controller.cli.queue import queue_list  # noqa: F401 - registered first: `queue`'s own commands list first
from controller.jobs.operations import Move

JobArg = Annotated[int, typer.Argument(metavar="ID", help="The job's id")]
PrinterArg = Annotated[str, typer.Argument(help="The printer's name")]


def _send(client: ApiClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        return client.request(method, path)
    return client.request(
        method, path, content=iter([json.dumps(body).encode()]), headers={"Content-Type": "application/json"}
    )


def _job_line(job: dict[str, Any], json_: bool, what: str) -> None:
    if json_:
        typer.echo(json.dumps(job, indent=2))
        return
    where = f" on {job['printer']}" if job.get("printer") else ""
    typer.echo(f"job {job['id']} ({job['file']}){where}: {what}")


@app.command(epilog=epilog("farmctl pause 17"))
def pause(
    job_id: JobArg,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Pause a printing job on its printer; it shows `paused` once the printer has paused (operator)."""
    job = _send(ApiClient(config, api, token_file), "POST", f"/api/v1/jobs/{job_id}/pause")
    _job_line(job, json_, "pause sent")


@app.command(epilog=epilog("farmctl resume 17"))
def resume(
    job_id: JobArg,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Resume a paused job on its printer (operator)."""
    job = _send(ApiClient(config, api, token_file), "POST", f"/api/v1/jobs/{job_id}/resume")
    _job_line(job, json_, "resume sent")


@queue_app.command("move", epilog=epilog("farmctl queue move 17 up"))
def queue_move(
    job_id: JobArg,
    to: Annotated[Move, typer.Argument(help="top, up (past the next priority level), down or bottom")],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Move a queued job; the queue's order is its priority, so this sets the job's priority (operator)."""
    job = _send(ApiClient(config, api, token_file), "POST", f"/api/v1/jobs/{job_id}/move", {"to": to.value})
    _job_line(job, json_, f"priority {job['priority']}")


@queue_app.command("reprint", epilog=epilog("farmctl queue reprint 17"))
def queue_reprint(
    job_id: JobArg,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Queue a finished job's file again as a new job for the same owner (operator)."""
    job = _send(ApiClient(config, api, token_file), "POST", f"/api/v1/jobs/{job_id}/reprint")
    _job_line(job, json_, f"queued as a reprint of job {job_id}")


def _printer_line(printer: dict[str, Any], json_: bool) -> None:
    if json_:
        typer.echo(json.dumps(printer, indent=2))
        return
    spell = printer.get("maintenance")
    status = f"in maintenance: {spell['reason']}" if spell else "in service"
    typer.echo(f"{printer['name']}: {printer['state']}, {status}")


@printers_app.command(
    "maintenance", epilog=epilog('farmctl printers maintenance mk4-1 --reason "nozzle swap"')
)
def printers_maintenance(
    printer: PrinterArg,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why, in one line (shown to everyone)")],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Take a printer out of service: it takes no new job; a print running on it goes on (operator)."""
    path = f"/api/v1/printers/{segment(printer)}/maintenance"
    _printer_line(_send(ApiClient(config, api, token_file), "POST", path, {"reason": reason}), json_)


@printers_app.command("back", epilog=epilog("farmctl printers back mk4-1"))
def printers_back(
    printer: PrinterArg,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Bring a printer back into service after maintenance (operator)."""
    path = f"/api/v1/printers/{segment(printer)}/maintenance"
    _printer_line(_send(ApiClient(config, api, token_file), "DELETE", path), json_)
