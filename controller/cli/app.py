"""The Typer apps the command modules attach to, and the help text every command shares."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

EXIT_CODES = (
    "Exit codes: 0 ok, 1 refused (404 no such job/printer, 409 conflict), 64 usage, "
    "65 bad input (400/413/415/422), 66 no such local file, 69 daemon unreachable, "
    "74 local file changed while sent, 76 not a farmctl daemon, 77 token missing or refused, "
    "78 bad config."
)
# How the CLI finds the daemon; shown at the end of each command's help.
CONNECT = (
    "The daemon's address and token come from --config (default $FARMCTL_CONFIG, then "
    "/etc/farmctl/farmctl.toml: api.listen and its first token), or from --api URL with "
    "--token-file FILE ($FARMCTL_TOKEN_FILE) or $FARMCTL_TOKEN (the token itself)."
)


def epilog(example: str, *, connects: bool = True) -> str:
    """A command's help tail: one example, how it finds the daemon, the exit codes."""
    # "\b" keeps click from re-wrapping the example onto one line with the text.
    parts = [f"\b\nExample:\n  {example}"]
    if connects:
        parts.append(CONNECT)
    parts.append(EXIT_CODES)
    return "\n\n".join(parts)


# Plain help (rich_markup_mode=None): flags show as `--json`, not `--json <bool>`, and the text stays
# readable when piped or read over SSH on a Pi.
app = typer.Typer(
    help="Print-farm controller: the daemon, its job queue and printers.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")
queue_app = typer.Typer(
    help="The job queue: list it (the default), add a file, show or cancel a job.",
    epilog=epilog("farmctl queue --state queued"),
    rich_markup_mode=None,
)
app.add_typer(queue_app, name="queue")


def farmctl_version() -> str:
    try:
        return version("farmctl")
    except PackageNotFoundError:  # run from a source tree without an install
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"farmctl {farmctl_version()}")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Print farmctl's version and exit"
        ),
    ] = False,
) -> None:
    """Print-farm controller: the daemon, its job queue and printers."""
