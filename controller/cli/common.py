"""What every client command shares: its options, exit codes, the config and the API client."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console

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
TOKEN_ENV = "FARMCTL_TOKEN"  # noqa: S105 - the name of a variable, not a secret
TOKEN_FILE_ENV = "FARMCTL_TOKEN_FILE"  # noqa: S105 - a variable name
CONFIG_ENV = "FARMCTL_CONFIG"

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

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"farmctl.toml (default ${CONFIG_ENV}, then {DEFAULT_CONFIG})",
        show_default=False,
    ),
]
ApiOpt = Annotated[
    str | None,
    typer.Option("--api", help="Daemon URL, e.g. http://127.0.0.1:8470 (default: the config's api.listen)"),
]
TokenOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar=TOKEN_FILE_ENV,
        help=f"File holding an API token (default ${TOKEN_FILE_ENV}; ${TOKEN_ENV} holds the token itself)",
        show_envvar=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
StateOpt = Annotated[
    list[JobState] | None, typer.Option("--state", "-s", help="Only jobs in this state (repeatable)")
]


def fail(message: str, code: int) -> typer.Exit:
    """Print `farmctl: message` to stderr; raise the returned Exit."""
    print(f"farmctl: {message}", file=sys.stderr)
    return typer.Exit(code)


def config_path(path: Path | None) -> Path:
    """`path`, else $FARMCTL_CONFIG, else the default."""
    return path or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load(path: Path | None) -> Config:
    """The config from `path`, $FARMCTL_CONFIG or the default; exit 78 naming the key when it is bad."""
    path = config_path(path)
    try:
        return load_config(path)
    except ConfigError as exc:
        hint = ""
        if not path.exists():
            hint = (
                f"\n  (pass --config FILE or set {CONFIG_ENV}; `bash deploy/demo` prints both for the demo)"
            )
        raise fail(f"{exc}{hint}", EX_CONFIG) from None


def _env_token() -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token and ("/" in token or token.startswith("~")) and Path(token).expanduser().is_file():
        raise fail(
            f"${TOKEN_ENV} holds a file name ({token}), but it must hold the token itself: "
            f"use --token-file {token} or {TOKEN_FILE_ENV}={token}",
            EX_USAGE,
        )
    return token


class ApiClient:
    """A small synchronous client of the daemon's API for the CLI; every failure becomes an exit code."""

    def __init__(self, config: Path | None, api: str | None, token_file: Path | None) -> None:
        token = self._token_from(token_file) if token_file else _env_token()
        cfg: Config | None = None
        if config or os.environ.get(CONFIG_ENV) or not api:
            cfg = load(config)
        elif not token:
            raise fail(
                f"--api {api} needs a token: --token-file FILE, ${TOKEN_FILE_ENV} or ${TOKEN_ENV} "
                "(or --config with [[api.tokens]])",
                EX_NOPERM,
            )
        self.base = (api or (f"http://{cfg.api.listen}" if cfg else "")).rstrip("/")
        if not token and cfg and cfg.api.tokens:
            token = cfg.api.tokens[0].token
        if not token:
            raise fail(
                f"no API token: the config has no [[api.tokens]]; use --token-file FILE or ${TOKEN_ENV}",
                EX_NOPERM,
            )
        self._headers = {"Authorization": f"Bearer {token}"}

    @staticmethod
    def _token_from(path: Path) -> str:
        try:
            token = path.expanduser().read_text().strip()
        except OSError as exc:
            raise fail(f"--token-file {path}: {exc.strerror}", EX_NOPERM) from None
        if not token:
            raise fail(f"--token-file {path} is empty", EX_NOPERM)
        return token

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
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise fail(f"--api {self.base}: {exc}", EX_USAGE) from None
        except httpx.HTTPError as exc:
            raise fail(
                f"cannot reach the farmctl daemon at {self.base}: {exc} (is it running?)", EX_UNAVAILABLE
            ) from None
        if resp.status_code >= 400:
            raise fail(_error_of(resp), _EXIT_OF_STATUS.get(resp.status_code, 1))
        try:
            return resp.json()
        except ValueError:
            raise fail(
                f"{self.base} did not answer with JSON: is it a farmctl daemon?", EX_PROTOCOL
            ) from None


def _error_of(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except (ValueError, AttributeError):
        return f"{resp.status_code} {resp.reason_phrase}: {resp.text[:200]}"


def console() -> Console:
    # Piped output keeps one row per line, so grep and awk see whole file names.
    return Console() if sys.stdout.isatty() else Console(width=10_000)


def ago(stamp: str | None) -> str:
    if not stamp:
        return "never"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def short_time(stamp: str | None) -> str:
    if not stamp:
        return "-"
    when = datetime.fromisoformat(stamp).astimezone()
    if when.date() == datetime.now().astimezone().date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%m-%d %H:%M")


def segment(value: str) -> str:
    """A name as one URL path segment: a stray "/" or "?" never reaches another endpoint."""
    return quote(value, safe="")
