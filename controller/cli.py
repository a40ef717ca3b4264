"""The `farmctl` command: run the daemon, check config, and talk to a running daemon over its API."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import secrets
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from controller.config import EX_CONFIG, EX_UNAVAILABLE, Config, ConfigError, load_config
from controller.jobs import JobState

# sysexits(3), so scripts can tell a refused file from a refused token from a daemon that is down.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_IOERR = 74
EX_PROTOCOL = 76
EX_NOPERM = 77
DEFAULT_CONFIG = Path("/etc/farmctl/farmctl.toml")
UPLOAD_CHUNK = 1 << 20

# What each refusal means to a script: the data was wrong, the token was, or the daemon's peer is down;
# anything else (404 no such job/printer, 409 conflict) is a plain failure.
_EXIT_OF_STATUS = {
    400: EX_DATAERR,
    401: EX_NOPERM,
    403: EX_NOPERM,
    413: EX_DATAERR,
    415: EX_DATAERR,
    422: EX_DATAERR,
    503: EX_UNAVAILABLE,
}
# The daemon answers an upload only after it has stored and scanned the whole file, which takes
# minutes for hundreds of MB on a Pi; each 1 MiB write may also be slow over Wi-Fi.
_UPLOAD_TIMEOUT = httpx.Timeout(10.0, write=60.0, read=600.0)

app = typer.Typer(help="Print-farm controller.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
queue_app = typer.Typer(help="The job queue: list it (the default), add a file, cancel a job.")
app.add_typer(queue_app, name="queue")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="farmctl.toml (default $FARMCTL_CONFIG or /etc/farmctl/farmctl.toml)"
    ),
]
ApiOpt = Annotated[str | None, typer.Option("--api", help="Daemon URL (default: the config's api.listen)")]
TokenOpt = Annotated[
    Path | None, typer.Option("--token-file", help="File holding an API token; default $FARMCTL_TOKEN")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
StateOpt = Annotated[
    list[JobState] | None, typer.Option("--state", "-s", help="Only jobs in this state (repeatable)")
]


def _fail(message: str, code: int) -> typer.Exit:
    print(f"farmctl: {message}", file=sys.stderr)
    return typer.Exit(code)


def _load(path: Path | None) -> Config:
    path = path or Path(os.environ.get("FARMCTL_CONFIG") or DEFAULT_CONFIG)
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _fail(str(exc), EX_CONFIG) from None


@app.command()
def run(config: ConfigOpt = None) -> None:
    """Run the daemon in the foreground (systemd: Type=notify, WatchdogSec)."""
    from controller.daemon import StartupError, run_daemon  # the daemon's imports are heavier
    from controller.logsetup import setup_logging

    cfg = _load(config)
    setup_logging(cfg.controller.log_level)
    # The modules and config loaded by now live as long as the daemon: out of the collector's sight,
    # each collection walks only what the work creates (~8 % less CPU for an ingest of 30,000 messages).
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(run_daemon(cfg))
    except StartupError as exc:
        raise _fail(str(exc), exc.exit_code) from None


@app.command()
def demo(
    printers: Annotated[int, typer.Option(min=1, max=8, help="How many virtual printers")] = 2,
    workdir: Annotated[Path, typer.Option("--dir", help="Scratch folder (wiped)")] = Path("run/demo"),
    listen: Annotated[str, typer.Option(help="API address")] = "127.0.0.1:8470",
    octoprint: Annotated[
        Path | None,
        typer.Option(help="OctoPrint executable; default $FARMCTL_OCTOPRINT_BIN or .venv-octoprint"),
    ] = None,
) -> None:
    """Start OctoPrint virtual printers and run the daemon against them until Ctrl-C."""
    from controller.demo import run_demo
    from controller.logsetup import setup_logging

    exe = octoprint or Path(os.environ.get("FARMCTL_OCTOPRINT_BIN") or ".venv-octoprint/bin/octoprint")
    if not exe.exists():
        raise _fail(f"OctoPrint not found at {exe}: run `bash deploy/demo` to install it", EX_UNAVAILABLE)
    setup_logging("info")
    run_demo(str(exe.resolve()), workdir.resolve(), printers, listen)


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="farmctl.toml to check")]) -> None:
    """Validate a config file and its secret files; exit 78 naming the key on error."""
    cfg = _load(path)
    n = len(cfg.printers)
    typer.echo(f"{path}: ok: {n} printer{'s' if n != 1 else ''}, {len(cfg.api.tokens)} API tokens")


class ApiClient:
    """A small synchronous client of the daemon's API for the CLI; every failure becomes an exit code."""

    def __init__(self, config: Path | None, api: str | None, token_file: Path | None) -> None:
        cfg = (
            _load(config) if config or not (api and (token_file or os.environ.get("FARMCTL_TOKEN"))) else None
        )
        self.base = (api or (f"http://{cfg.api.listen}" if cfg else "")).rstrip("/")
        if token_file:
            try:
                token = token_file.read_text().strip()
            except OSError as exc:
                raise _fail(f"--token-file {token_file}: {exc.strerror}", EX_CONFIG) from None
        else:
            token = os.environ.get("FARMCTL_TOKEN", "")
            if not token and cfg and cfg.api.tokens:
                token = cfg.api.tokens[0].token
        if not token:
            raise _fail(
                "no API token: use --token-file, $FARMCTL_TOKEN or a config with [[api.tokens]]", EX_NOPERM
            )
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, *, params: Mapping[str, str | list[str]] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str) -> Any:
        return self.request("POST", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | list[str]] | None = None,
        content: Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | float = 10,
    ) -> Any:
        """The decoded JSON answer; on an error answer, print the API's message and exit."""
        try:
            resp = httpx.request(
                method,
                f"{self.base}{path}",
                params=params,
                content=content,
                headers={**self._headers, **(headers or {})},
                timeout=timeout,
            )
        except httpx.InvalidURL as exc:
            raise _fail(f"--api {self.base}: {exc}", EX_USAGE) from None
        except httpx.HTTPError as exc:
            raise _fail(f"cannot reach the farmctl daemon at {self.base}: {exc}", EX_UNAVAILABLE) from None
        if resp.status_code >= 400:
            raise _fail(_error_of(resp), _EXIT_OF_STATUS.get(resp.status_code, 1))
        try:
            return resp.json()
        except ValueError:
            raise _fail(
                f"{self.base} did not answer with JSON: is it a farmctl daemon?", EX_PROTOCOL
            ) from None


def _error_of(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except (ValueError, AttributeError):
        return f"{resp.status_code} {resp.reason_phrase}: {resp.text[:200]}"


def _console() -> Console:
    # Piped output keeps one row per line, so grep and awk see whole file names.
    return Console() if sys.stdout.isatty() else Console(width=10_000)


def _ago(stamp: str | None) -> str:
    if not stamp:
        return "never"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _temp(temps: dict[str, Any], key: str) -> str:
    t = temps.get(key)
    if not t or t.get("actual") is None:
        return "-"
    target = t.get("target")
    return f"{t['actual']:.0f}/{target:.0f}" if target else f"{t['actual']:.0f}"


_STATE_STYLE = {"idle": "green", "printing": "cyan", "paused": "yellow", "error": "red", "offline": "dim"}


@app.command()
def printers(
    config: ConfigOpt = None, api: ApiOpt = None, token_file: TokenOpt = None, json_: JsonOpt = False
) -> None:
    """Live state of every printer."""
    rows = ApiClient(config, api, token_file).get("/api/v1/printers")
    if json_:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("printer", "state", "progress", "file", "tool °C", "bed °C", "group", "last seen")
    for p in rows:
        style = _STATE_STYLE.get(p["state"], "magenta")
        progress = f"{p['progress']:.0f}%" if p.get("progress") is not None else "-"
        table.add_row(
            escape(p["name"]),
            f"[{style}]{p['state']}[/]",
            progress,
            escape(p.get("file") or "-"),
            _temp(p["temperatures"], "tool0"),
            _temp(p["temperatures"], "bed"),
            escape(p["group"]),
            _ago(p.get("last_seen")),
        )
    _console().print(table)


@app.command()
def clear(
    printer: Annotated[str, typer.Argument(help="Printer whose bed an operator has cleared")],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Confirm a printer's bed is clear so the next job may start there (operator)."""
    answer = ApiClient(config, api, token_file).post(f"/api/v1/printers/{_segment(printer)}/clear")
    if json_:
        typer.echo(json.dumps(answer, indent=2))
        return
    typer.echo(f"{answer['name']}: {answer['state']}")


def _segment(value: str) -> str:
    # A name is one path segment; quoting keeps a stray "/" or "?" from reaching another endpoint.
    return quote(value, safe="")


class LocalFileError(RuntimeError):
    """The file being uploaded could not be read, or changed size while it was sent."""


def _quoted(value: str) -> str:
    # A quoted-string as python_multipart unquotes it; a line break would end the header early.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "%0D").replace("\n", "%0A")


class MultipartBody:
    """A multipart/form-data body of form fields and then one `file` part, read from `file` as it is sent."""

    def __init__(
        self, fields: Mapping[str, str], file: BinaryIO, file_name: str, *, boundary: str | None = None
    ) -> None:
        self.boundary = boundary or secrets.token_hex(16)
        self.file_size = os.fstat(file.fileno()).st_size
        self._file = file
        dash = f"--{self.boundary}\r\n"
        head = [
            f'{dash}Content-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        ]
        # The daemon stores the file as it arrives, so it wants every field before the file part.
        head.append(
            f'{dash}Content-Disposition: form-data; name="file"; filename="{_quoted(file_name)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        self.head = "".join(head).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return len(self.head) + self.file_size + len(self.tail)

    def chunks(self, on_sent: Callable[[int], object] = lambda n: None) -> Iterator[bytes]:
        """The body, once, from the file's current position; `on_sent(n)` after each file chunk."""
        yield self.head
        sent = 0
        while True:
            try:
                chunk = self._file.read(UPLOAD_CHUNK)
            except OSError as exc:
                raise LocalFileError(f"cannot read {self._file.name}: {exc.strerror}") from None
            if not chunk:
                break
            sent += len(chunk)
            if sent > self.file_size:
                raise LocalFileError(
                    f"{self._file.name} grew while it was sent: try again once it is written"
                )
            yield chunk
            on_sent(len(chunk))
        if sent != self.file_size:
            raise LocalFileError(f"{self._file.name} shrank while it was sent: try again once it is written")
        yield self.tail


def _open_input(path: Path) -> BinaryIO:
    try:
        file = path.open("rb")
    except OSError as exc:
        raise _fail(f"{path}: {exc.strerror}", EX_NOINPUT) from None
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        raise _fail(f"{path}: not a regular file", EX_NOINPUT)
    return file


def _upload_progress(show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
    )


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


def _short_time(stamp: str | None) -> str:
    if not stamp:
        return "-"
    when = datetime.fromisoformat(stamp).astimezone()
    return (
        when.strftime("%H:%M")
        if when.date() == datetime.now().astimezone().date()
        else when.strftime("%m-%d %H:%M")
    )


@queue_app.command("add")
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
    with _open_input(file) as upload:
        client = ApiClient(config, api, token_file)
        body = MultipartBody(fields, upload, file.name)
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.content_length)}
        with _upload_progress(show=not json_ and sys.stderr.isatty()) as progress:
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
                raise _fail(str(exc), EX_IOERR) from None
    jobs = answer["jobs"]
    if json_:
        typer.echo(json.dumps(jobs, indent=2))
        return
    table = Table("id", "state", "file", "owner", "material", "printer")
    for job in jobs:
        table.add_row(
            str(job["id"]),
            _job_state(job),
            escape(job["file"]),
            escape(job["owner"]),
            escape(job.get("material") or "any"),
            escape(job.get("required_printer") or job.get("required_group") or "any"),
        )
    _console().print(table)


def _list_jobs(client: ApiClient, states: list[JobState] | None, json_: bool) -> None:
    params = {"state": [str(s) for s in states]} if states else None
    jobs = client.get("/api/v1/jobs", params=params)["jobs"]
    if json_:
        typer.echo(json.dumps(jobs, indent=2))
        return
    table = Table(
        "id", "state", "file", "owner", "printer", "prio", "material", "progress", "created", "error"
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
            _short_time(job.get("created_at")),
            escape(job.get("error") or ""),
        )
    _console().print(table)


@queue_app.callback(invoke_without_command=True)
def queue(
    ctx: typer.Context,
    state: StateOpt = None,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The job queue; without a command, list it."""
    if ctx.invoked_subcommand is None:
        _list_jobs(ApiClient(config, api, token_file), state, json_)


@queue_app.command("list")
def queue_list(
    state: StateOpt = None,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Every job, oldest first; --json prints the API's list."""
    _list_jobs(ApiClient(config, api, token_file), state, json_)


@queue_app.command("cancel")
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


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
