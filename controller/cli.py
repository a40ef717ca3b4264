"""The `farmctl` command: run the daemon, check config, and talk to a running daemon over its API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from controller.config import EX_CONFIG, EX_UNAVAILABLE, Config, ConfigError, load_config

EX_NOPERM = 77
DEFAULT_CONFIG = Path("/etc/farmctl/farmctl.toml")

app = typer.Typer(help="Print-farm controller.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="farmctl.toml (default $FARMCTL_CONFIG or /etc/farmctl/farmctl.toml)"
    ),
]
ApiOpt = Annotated[
    str | None, typer.Option("--api", help="Daemon URL; default from the config's [api] listen")
]
TokenOpt = Annotated[
    Path | None, typer.Option("--token-file", help="File holding an API token; default $FARMCTL_TOKEN")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


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
    """A small synchronous client of the daemon's API for the CLI."""

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

    def get(self, path: str) -> Any:
        try:
            resp = httpx.get(f"{self.base}{path}", headers=self._headers, timeout=10)
        except httpx.HTTPError as exc:
            raise _fail(f"cannot reach the farmctl daemon at {self.base}: {exc}", EX_UNAVAILABLE) from None
        if resp.status_code in (401, 403):
            raise _fail(f"{resp.status_code}: {_error_of(resp)}", EX_NOPERM)
        if resp.status_code >= 400:
            raise _fail(f"{resp.status_code}: {_error_of(resp)}", 1)
        return resp.json()


def _error_of(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except ValueError:
        return resp.text[:200]


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
            p["name"],
            f"[{style}]{p['state']}[/]",
            progress,
            p.get("file") or "-",
            _temp(p["temperatures"], "tool0"),
            _temp(p["temperatures"], "bed"),
            p["group"],
            _ago(p.get("last_seen")),
        )
    Console().print(table)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
